"""Exemplars in the WAL (issue 18/20): kiln writes a type 4 record with the
samples of a scrape that carried exemplars, replays it at start (after a
kill -9 too), and the record is Prometheus' own: Debian's Prometheus 2.42
(--enable-feature=exemplar-storage) started on a copy of kiln's data dir
answers query_exemplars as kiln did, and kiln started on a copy of
Prometheus' data dir answers as Prometheus did.
"""
import http.server
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest
import urllib.parse

import kilntest
from kilntest import Kiln, Prometheus, free_port, wait_for

T0 = int(time.time())  # the dated exemplars' time: recent, inside the head

# Four series with exemplars: two dated, one undated (it takes the scrape's
# time; the same again is a duplicate, as in Prometheus), and one whose
# exemplar changes every scrape (n: the scrapes answered).
BODY = """# TYPE req counter
# HELP req Requests served.
req_total{{path="/a"}} 10 # {{trace_id="abc",span="1"}} 1.5 {t0}.250
req_total{{path="/b"}} 20 # {{trace_id="def"}} 2 {t1}
req_total{{path="/c"}} {n} # {{trace_id="n{n}"}} {n}
# TYPE lat_seconds histogram
# UNIT lat_seconds seconds
# HELP lat_seconds Latency.
lat_seconds_bucket{{le="0.5"}} 3 # {{trace_id="ghi"}} 0.25
lat_seconds_bucket{{le="+Inf"}} 4
lat_seconds_sum 1.5
lat_seconds_count 4
# EOF
"""


class Handler(http.server.BaseHTTPRequestHandler):
    n = 0

    def do_GET(self):
        Handler.n += 1
        body = BODY.format(t0=T0, t1=T0 + 1, n=Handler.n).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def config(port):
    return f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ex
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def exemplars(url, end):
    """query_exemplars over {job="ex"} up to end (seconds), canonical: sorted
    series, each with its exemplars as (labels, value, timestamp)."""
    q = urllib.parse.urlencode({"query": '{job="ex"}', "start": "0", "end": str(end)})
    st, body = kilntest.http_get(f"{url}/api/v1/query_exemplars?{q}")
    if st != 200:
        raise AssertionError(f"query_exemplars answered {st}: {body[:300]!r}")
    out = []
    for s in json.loads(body)["data"] or []:
        exs = [(json.dumps(e["labels"], sort_keys=True), e["value"], e["timestamp"]) for e in s["exemplars"]]
        out.append((json.dumps(s["seriesLabels"], sort_keys=True), exs))
    return sorted(out)


def prometheus_on(data_dir, cfg):
    """Debian's Prometheus with exemplar storage on the data dir given."""
    p = Prometheus(cfg, args=["--enable-feature=exemplar-storage"])
    p.args = [a for a in p.args if not a.startswith("--storage.tsdb.path=")] + [f"--storage.tsdb.path={data_dir}"]
    return p


def changing_count(ex):
    """The exemplars of the series whose exemplar changes every scrape."""
    return sum(len(exs) for s, exs in ex if '"/c"' in s)


class ExemplarWALTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-exwal-")

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def scrape_with_kiln(self, data_dir):
        """A kiln scraping the target until it holds 3 exemplars of the changing series; returns it running."""
        k = Kiln(args=["--enable-feature=exemplar-storage"], config=config(self.srv.server_address[1]),
                 data_dir=data_dir)
        k.start()
        url = f"http://{k.addr}"
        if not wait_for(lambda: changing_count(exemplars(url, T0 + 3600)) >= 3, timeout=30):
            log = k.read_log()
            k.cleanup()
            raise AssertionError("kiln did not store exemplars in 30 s:\n" + log[-3000:])
        return k

    def test_replay_after_kill9(self):
        data = os.path.join(self.tmp, "kill9")
        k = self.scrape_with_kiln(data)
        try:
            before = exemplars(f"http://{k.addr}", T0 + 3600)
            k.stop(sig=signal.SIGKILL)
            k.log.close()
            self.assertEqual(len(before), 4, before)
            self.assertGreaterEqual(changing_count(before), 3)
            k2 = Kiln(args=["--enable-feature=exemplar-storage"], config="global: {}\n", data_dir=data)
            try:
                k2.start()
                after = exemplars(f"http://{k2.addr}", T0 + 3600)
                # every exemplar answered before the kill is back (the kill may
                # have come after one more scrape was logged: at most more)
                for (s, exs), (s2, exs2) in zip(before, after):
                    self.assertEqual(s, s2)
                    self.assertEqual(exs2[:len(exs)], exs)
                self.assertEqual(len(after), len(before))
                self.assertIn("exemplars=", k2.read_log())
            finally:
                k2.finish()
        finally:
            k.cleanup()

    def test_prometheus_reads_kiln_wal(self):
        kilntest.require("prometheus")
        data = os.path.join(self.tmp, "kiln")
        k = self.scrape_with_kiln(data)
        try:
            self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
            k.log.close()
            k2 = Kiln(args=["--enable-feature=exemplar-storage"], config="global: {}\n", data_dir=data)
            k2.start()
            want = exemplars(f"http://{k2.addr}", T0 + 3600)
            self.assertEqual(k2.stop(), 0)
            k2.log.close()
        finally:
            k.cleanup()
        self.assertEqual(len(want), 4)
        copy = os.path.join(self.tmp, "kiln-copy")
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("lock"))
        with prometheus_on(copy, "global: {}\n") as p:
            self.assertEqual(exemplars(p.url, T0 + 3600), want)

    def test_kiln_reads_prometheus_wal(self):
        kilntest.require("prometheus")
        data = os.path.join(self.tmp, "prom")
        with prometheus_on(data, config(self.srv.server_address[1])) as p:
            if not wait_for(lambda: changing_count(exemplars(p.url, T0 + 3600)) >= 3, timeout=30):
                raise AssertionError("prometheus did not store exemplars in 30 s")
        # stopped: its answer is what its WAL holds
        copy = os.path.join(self.tmp, "prom-copy")
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("lock"))
        with prometheus_on(data, "global: {}\n") as p2:
            want = exemplars(p2.url, T0 + 3600)
        self.assertEqual(len(want), 4)
        self.assertGreaterEqual(changing_count(want), 3)
        k = Kiln(args=["--enable-feature=exemplar-storage"], config="global: {}\n", data_dir=copy)
        try:
            k.start()
            self.assertEqual(exemplars(f"http://{k.addr}", T0 + 3600), want)
        finally:
            k.finish()


if __name__ == "__main__":
    unittest.main()
