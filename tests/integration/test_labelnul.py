"""A label value holding a NUL byte survives every boundary, as in
Prometheus 2.42 (kiln holds the NUL as C0 80 inside: util/strnul.c).

One OpenMetrics target serves values around a NUL ("x", "x\\0z", "x ",
"x \\0 y"); kiln and Prometheus scrape it.
kiln answers the same series in the same order as Prometheus (\\u0000 in the
JSON), sends the NUL byte by remote write (Prometheus receives it), federate
and remote read; a remote-written NUL value is stored; all of it survives a
restart (WAL replay) and a snapshot (the head written as a block), which
Prometheus 2.42 opens and answers the same from.
"""
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import test_remote_read as rr
from kilntest import PROMETHEUS, Kiln, Prometheus, free_port, http_get, require, wait_for
from rwproto import write_body

BODY = (b'# TYPE a gauge\na{b="x"} 1\na{b="x\x00z"} 2\na{b="x "} 4\na{b="x \x00 y"} 5\n'
        b'# TYPE c counter\nc_total{b="x\x00z"} 1\n# EOF\n')
VALUES = ["x", "x\x00z", "x ", "x \x00 y"]  # Go's (and so Prometheus') order: the NUL first
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", OM)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *a):
        pass


def q(path, **params):
    return path + "?" + urllib.parse.urlencode(params, doseq=True)


class LabelNul(unittest.TestCase):
    def setUp(self):
        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.addCleanup(self.srv.server_close)
        self.addCleanup(self.srv.shutdown)
        target = f"127.0.0.1:{self.srv.server_address[1]}"
        scrape = f"scrape_configs:\n  - job_name: t\n    static_configs: [{{targets: ['{target}']}}]\n"
        self.prom = Prometheus("global: {scrape_interval: 1s}\n" + scrape,
                               args=["--web.enable-remote-write-receiver"])
        self.prom.__enter__()
        self.addCleanup(self.prom.__exit__)
        self.kcfg = ("global: {scrape_interval: 1s, external_labels: {via: kiln}}\n" + scrape +
                     f"remote_write:\n  - url: {self.prom.url}/api/v1/write\n")
        self.kiln = Kiln(config=self.kcfg, args=("--web.enable-admin-api",))
        self.kiln.start()
        self.addCleanup(self.kiln.cleanup)

    def kq(self, path):
        st, body = self.kiln.get_json(path)
        self.assertEqual(st, 200, body)
        return body["data"]

    def series_b(self, data, sel):
        return [s["b"] for s in data(q("/api/v1/series", **{"match[]": sel}))]

    def test_nul_everywhere(self):
        now = int(time.time())
        self.assertTrue(wait_for(lambda: len(self.series_b(self.kq, "a")) == 4, 30), self.kiln.read_log())
        self.assertTrue(wait_for(lambda: len(self.series_b(self.prom.query, 'a{via=""}')) == 4, 30))
        # the same series in the same order as Prometheus, \u0000 in the JSON
        self.assertEqual(self.series_b(self.kq, "a"), VALUES)
        self.assertEqual(self.series_b(self.prom.query, 'a{via=""}'), VALUES)
        self.assertEqual(self.kq(q("/api/v1/label/b/values")), self.prom.query(q("/api/v1/label/b/values")))
        raw = self.kiln.get(q("/api/v1/query", query='a{b="x \\x00 y"}'))[2]
        self.assertIn(b'"b":"x \\u0000 y"', raw)
        self.assertEqual(json.loads(raw)["data"]["result"][0]["value"][1], "5")
        # remote write out: Prometheus received the NUL byte
        self.assertTrue(wait_for(lambda: len(self.series_b(self.prom.query, 'a{via="kiln"}')) == 4, 60),
                        self.kiln.read_log())
        self.assertEqual(self.series_b(self.prom.query, 'a{via="kiln"}'), VALUES)
        # federate: the NUL byte itself in the exposition
        st, _, fed = self.kiln.get(q("/federate", **{"match[]": "a"}))
        self.assertEqual(st, 200)
        self.assertIn(b'b="x \x00 y"', fed)
        # remote write in
        st, _, body = self.kiln.post("/api/v1/write", write_body([([("__name__", "rw"), ("v", b"m\x00n")],
                                                                    [(7.0, now * 1000)])]), headers=rr.HEADERS)
        self.assertEqual(st, 204, body)
        self.assertEqual([s["v"] for s in self.kq(q("/api/v1/series", **{"match[]": "rw"}))], ["m\x00n"])
        # remote read out (streamed chunks)
        st, _, body = self.kiln.post("/api/v1/read", rr.read_request([((now - 600) * 1000, (now + 600) * 1000,
                                                                       [(0, "__name__", "a")])], True),
                                     headers=rr.READ_HEADERS)
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(dict(k)["b"] for k in rr.read_streamed(self, body)), sorted(VALUES))
        # restart: the WAL replayed
        self.assertEqual(self.kiln.stop(), 0, self.kiln.read_log())
        with open(self.kiln.config_path, "w") as f:  # no scrape: what it answers came from the WAL
            f.write("global: {scrape_interval: 1s}\n")
        self.kiln.start()
        self.assertEqual(self.series_b(self.kq, "a"), VALUES)
        self.assertEqual([s["v"] for s in self.kq(q("/api/v1/series", **{"match[]": "rw"}))], ["m\x00n"])
        # a snapshot (the head as a block): Prometheus 2.42 opens a copy and answers the same
        st, _, body = self.kiln.post("/api/v1/admin/tsdb/snapshot")
        self.assertEqual(st, 200, body)
        snap = os.path.join(self.kiln.data, "snapshots", json.loads(body)["data"]["name"])
        tmp = tempfile.mkdtemp(prefix="kiln-nul-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copytree(snap, os.path.join(tmp, "data"))
        require("prometheus", PROMETHEUS)
        port = free_port()
        with open(os.path.join(tmp, "p.yml"), "w") as f:
            f.write("global: {scrape_interval: 1h}\n")
        with open(os.path.join(tmp, "p.log"), "wb") as log:
            p = subprocess.Popen([PROMETHEUS, f"--config.file={tmp}/p.yml", f"--storage.tsdb.path={tmp}/data",
                                  f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            self.assertTrue(wait_for(lambda: http_get(url + "/-/ready")[0] == 200, 60))

            def pq(path):
                return json.loads(http_get(url + path)[1])["data"]
            self.assertEqual(self.series_b(pq, "a"), VALUES)
            self.assertEqual([s["v"] for s in pq(q("/api/v1/series", **{"match[]": "rw"}))], ["m\x00n"])
            got = pq(q("/api/v1/query", query='a{b="x \\x00 y"}', time=now + 2))["result"]
            self.assertEqual([r["value"][1] for r in got], ["5"])
        finally:
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    unittest.main()
