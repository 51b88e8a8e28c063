"""Scraping against real targets: a small exporter served from this test
(good, gzip, OpenMetrics, slow, 500, broken, over the sample limit, a series
that comes and goes, a target that goes away), kiln's own /metrics, and
Debian's prometheus-node-exporter scraped by kiln and by Prometheus 2.42
with the same configuration (the series sets must be identical).
"""
import base64
import gzip
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
import urllib.parse

from kilntest import NODE_EXPORTER, PROMETHEUS, Kiln, Process, free_port, http_get, require, wait_for

GOOD = b"""# HELP test_gauge A gauge for the test.
# TYPE test_gauge gauge
test_gauge{path="/a",quote="say \\"hi\\""} 42.5
test_gauge{path="/b"} -1e3
# HELP test_requests_total Requests.
# TYPE test_requests_total counter
test_requests_total{code="200",job="inner"} 17
drop_me_total 1
drop_me_too 2
"""

OM = b"""# TYPE om_requests counter
# HELP om_requests Requests seen.
om_requests_total{code="200"} 7
om_requests_created{code="200"} 1.7e9
# TYPE om_temp_celsius gauge
# UNIT om_temp_celsius celsius
om_temp_celsius 21.5
# EOF
"""

BROKEN = b"""# TYPE ok gauge
ok 1
this line is { broken 2
"""


class Exporter:
    """A threaded HTTP server with one path per kind of target."""

    def __init__(self):
        self.flappy = True
        self.headers = {}
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body, ctype="text/plain; version=0.0.4", extra=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # kiln gave up (the slow target): nothing to do

            def do_GET(self):
                path = urllib.parse.urlparse(self.path).path
                exporter.headers[path] = dict(self.headers)
                if path == "/metrics":
                    body = GOOD + (b"flappy 1\n" if exporter.flappy else b"")
                    self.send(200, body)
                elif path == "/gzip":
                    if "gzip" not in self.headers.get("Accept-Encoding", ""):
                        self.send(406, b"gzip wanted\n")
                        return
                    self.send(200, gzip.compress(b"gz_value 3\n"), extra={"Content-Encoding": "gzip"})
                elif path == "/om":
                    self.send(200, OM, "application/openmetrics-text; version=1.0.0; charset=utf-8")
                elif path == "/slow":
                    time.sleep(1.5)
                    self.send(200, b"slow_value 1\n")
                elif path == "/500":
                    self.send(500, b"oops\n")
                elif path == "/broken":
                    self.send(200, BROKEN)
                elif path in ("/auth-bearer", "/auth-basic"):
                    self.send(200, b"auth_ok 1\n")
                elif path == "/many":
                    self.send(200, b"".join(b"many{i=\"%d\"} %d\n" % (i, i) for i in range(20)))
                else:
                    self.send(404, b"not found\n")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def config(exporter_port, kiln_port, secrets, with_temp=True):
    """secrets: a folder holding the files "token" and "password"."""
    t = f"127.0.0.1:{exporter_port}"
    jobs = f"""global:
  scrape_interval: 1s
  scrape_timeout: 800ms
scrape_configs:
  - job_name: good
    static_configs:
      - targets: ["{t}"]
        labels: {{env: test}}
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: drop_me.*
        action: drop
  - job_name: honor
    honor_labels: true
    static_configs: [{{targets: ["{t}"]}}]
    relabel_configs:
      - target_label: instance
        replacement: honor-instance
  - job_name: gz
    metrics_path: /gzip
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: om
    metrics_path: /om
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: slow
    metrics_path: /slow
    scrape_timeout: 300ms
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: err500
    metrics_path: /500
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: broken
    metrics_path: /broken
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: limited
    metrics_path: /many
    sample_limit: 5
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: self
    static_configs: [{{targets: ["127.0.0.1:{kiln_port}"]}}]
  - job_name: relabeled_away
    static_configs: [{{targets: ["{t}"]}}]
    relabel_configs:
      - action: drop
        source_labels: [__address__]
        regex: .*
  - job_name: bearer
    metrics_path: /auth-bearer
    authorization: {{credentials_file: "{secrets}/token"}}
    static_configs: [{{targets: ["{t}"]}}]
  - job_name: basic
    metrics_path: /auth-basic
    basic_auth: {{username: u, password_file: "{secrets}/password"}}
    static_configs: [{{targets: ["{t}"]}}]
"""
    if with_temp:
        jobs += f"""  - job_name: temp
    static_configs: [{{targets: ["{t}"]}}]
"""
    return jobs


class TestScrape(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exporter = Exporter()
        cls.kiln = Kiln(args=("--web.enable-lifecycle",))
        try:
            # the secrets end in newlines, which kiln drops as Prometheus does
            with open(os.path.join(cls.kiln.tmp, "token"), "w") as f:
                f.write("s3cret\n")
            with open(os.path.join(cls.kiln.tmp, "password"), "w") as f:
                f.write("pw\r\n")
            with open(cls.kiln.config_path, "w") as f:
                f.write(config(cls.exporter.port, cls.kiln.port, cls.kiln.tmp))
            cls.kiln.start()
            # every job has been scraped at least twice
            ok = wait_for(lambda: cls.count("scrape_duration_seconds") >= 10 and
                          (cls.value('count_over_time(up{job="good"}[1m])') or 0) >= 2, 20)
            if not ok:
                raise RuntimeError("targets were not scraped:\n" + cls.kiln.read_log()[-3000:])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.exporter.stop()
        code = cls.kiln.stop()
        log = cls.kiln.read_log()
        cls.kiln.cleanup()
        if code != 0:
            raise AssertionError(f"kiln exited with {code}:\n{log[-4000:]}")

    @classmethod
    def query(cls, q):
        st, _, body = cls.kiln.get("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        assert st == 200, body
        return json.loads(body)["data"]["result"]

    @classmethod
    def count(cls, q):
        return len(cls.query(q))

    @classmethod
    def value(cls, q):
        r = cls.query(q)
        return float(r[0]["value"][1]) if r else None

    def up(self, job):
        return self.value(f'up{{job="{job}"}}')

    def targets(self):
        st, body = self.kiln.get_json("/api/v1/targets")
        self.assertEqual(st, 200)
        return {t["scrapePool"]: t for t in body["data"]["activeTargets"]}, body["data"]["droppedTargets"]

    def test_good_target_samples_and_labels(self):
        r = self.query('test_gauge{job="good"}')
        got = {x["metric"]["path"]: (x["metric"], float(x["value"][1])) for x in r}
        self.assertEqual(set(got), {"/a", "/b"})
        m, v = got["/a"]
        self.assertEqual(v, 42.5)
        self.assertEqual(m["quote"], 'say "hi"')
        self.assertEqual(m["env"], "test")
        self.assertEqual(m["instance"], f"127.0.0.1:{self.exporter.port}")
        self.assertEqual(got["/b"][1], -1000)

    def test_clashing_label_becomes_exported(self):
        r = self.query('test_requests_total{job="good"}')
        self.assertEqual(len(r), 1, r)
        self.assertEqual(r[0]["metric"]["exported_job"], "inner")

    def test_honor_labels_keeps_scraped_job(self):
        r = self.query('test_requests_total{instance="honor-instance"}')
        self.assertEqual(len(r), 1, r)
        self.assertEqual(r[0]["metric"]["job"], "inner")
        self.assertNotIn("exported_job", r[0]["metric"])

    def test_metric_relabel_drop_and_report_series(self):
        self.assertEqual(self.count('{__name__=~"drop_me.*",job="good"}'), 0)
        self.assertEqual(self.count('{__name__=~"drop_me.*",job="temp"}'), 2)
        scraped = self.value('scrape_samples_scraped{job="good"}')
        post = self.value('scrape_samples_post_metric_relabeling{job="good"}')
        self.assertIn(scraped, (5, 6))  # flappy may be toggled by another test
        self.assertEqual(scraped - post, 2)
        self.assertEqual(self.up("good"), 1)
        self.assertGreater(self.value('scrape_duration_seconds{job="good"}'), 0)
        self.assertIsNotNone(self.value('scrape_series_added{job="good"}'))

    def test_gzip_target(self):
        self.assertEqual(self.up("gz"), 1)
        self.assertEqual(self.value('gz_value{job="gz"}'), 3)

    def test_openmetrics_target(self):
        self.assertEqual(self.up("om"), 1)
        self.assertEqual(self.value('om_requests_total{job="om",code="200"}'), 7)
        self.assertEqual(self.value('om_temp_celsius{job="om"}'), 21.5)
        h = self.exporter.headers["/om"]
        accept = h.get("Accept", "")
        self.assertTrue(accept.startswith("application/openmetrics-text;version=1.0.0"), accept)
        self.assertIn("text/plain;version=0.0.4", accept)
        self.assertEqual(float(h.get("X-Prometheus-Scrape-Timeout-Seconds")), 0.8)

    def test_authorization_from_files(self):
        self.assertEqual(self.up("bearer"), 1)
        self.assertEqual(self.exporter.headers["/auth-bearer"].get("Authorization"), "Bearer s3cret")
        self.assertEqual(self.up("basic"), 1)
        self.assertEqual(self.exporter.headers["/auth-basic"].get("Authorization"),
                         "Basic " + base64.b64encode(b"u:pw").decode())

    def test_failed_targets_are_down_with_reasons(self):
        cases = {
            "slow": "context deadline exceeded",
            "err500": "server returned HTTP status 500",
            "broken": "line 3",
            "limited": "sample limit exceeded",
        }
        # on a loaded machine the slow target's first scrape (which times out) may not have ended yet
        for job in cases:
            self.assertTrue(wait_for(lambda j=job: self.up(j) is not None, 20), job)
        ts, _ = self.targets()
        for job, why in cases.items():
            self.assertEqual(self.up(job), 0, job)
            self.assertEqual(ts[job]["health"], "down", job)
            self.assertIn(why, ts[job]["lastError"], job)
        # a failed scrape stores nothing but the report series
        self.assertEqual(self.count('ok{job="broken"}'), 0)
        self.assertEqual(self.count('many{job="limited"}'), 0)
        self.assertEqual(self.count('slow_value'), 0)
        self.assertEqual(self.value('scrape_samples_post_metric_relabeling{job="limited"}'), 0)

    def test_targets_api(self):
        ts, dropped = self.targets()
        g = ts["good"]
        self.assertEqual(g["health"], "up")
        self.assertEqual(g["lastError"], "")
        self.assertEqual(g["scrapeUrl"], f"http://127.0.0.1:{self.exporter.port}/metrics")
        self.assertEqual(g["labels"], {"env": "test", "instance": f"127.0.0.1:{self.exporter.port}",
                                       "job": "good"})
        self.assertEqual(g["discoveredLabels"]["__address__"], f"127.0.0.1:{self.exporter.port}")
        self.assertEqual(g["discoveredLabels"]["__metrics_path__"], "/metrics")
        self.assertEqual(g["discoveredLabels"]["__scrape_interval__"], "1s")
        self.assertEqual(g["scrapeInterval"], "1s")
        self.assertEqual(g["scrapeTimeout"], "800ms")
        self.assertGreater(g["lastScrapeDuration"], 0)
        self.assertTrue(g["lastScrape"].startswith("20"), g["lastScrape"])
        self.assertEqual(ts["self"]["health"], "up", ts["self"])
        self.assertEqual([d["discoveredLabels"]["job"] for d in dropped], ["relabeled_away"])
        st, body = self.kiln.get_json("/api/v1/targets?state=dropped")
        self.assertEqual(body["data"]["activeTargets"], [])
        self.assertEqual(len(body["data"]["droppedTargets"]), 1)

    def test_metadata_api(self):
        st, body = self.kiln.get_json("/api/v1/metadata?metric=test_gauge")
        self.assertEqual(st, 200)
        self.assertEqual(body["data"], {"test_gauge": [{"type": "gauge", "help": "A gauge for the test.",
                                                        "unit": ""}]})
        st, body = self.kiln.get_json("/api/v1/metadata?metric=om_temp_celsius")
        self.assertEqual(body["data"]["om_temp_celsius"][0]["unit"], "celsius")
        st, body = self.kiln.get_json('/api/v1/targets/metadata?' + urllib.parse.urlencode(
            {"match_target": '{job="good"}', "metric": "test_requests_total"}))
        self.assertEqual(st, 200)
        self.assertEqual(len(body["data"]), 1, body)
        self.assertEqual(body["data"][0]["type"], "counter")
        self.assertEqual(body["data"][0]["target"]["job"], "good")
        st, body = self.kiln.get_json('/api/v1/targets/metadata?match_target=%7Bjob%3D')
        self.assertEqual(st, 400)

    def test_self_scrape(self):
        self.assertEqual(self.up("self"), 1)
        self.assertGreater(self.value('kiln_scrapes_total{job="self"}'), 0)

    def test_zz_series_that_disappears_gets_stale(self):
        self.assertEqual(self.value('flappy{job="good"}'), 1)
        self.exporter.flappy = False
        # within the 5m lookback only a stale marker can hide it
        self.assertTrue(wait_for(lambda: self.count('flappy{job="good"}') == 0, 10))
        self.assertEqual(self.count('test_gauge{job="good"}'), 2)
        self.exporter.flappy = True

    def test_zz_reload_removes_target_with_stale_markers(self):
        self.assertEqual(self.count('test_gauge{job="temp"}'), 2)
        before = self.value('count_over_time(up{job="good"}[1h])')
        with open(self.kiln.config_path, "w") as f:
            f.write(config(self.exporter.port, self.kiln.port, self.kiln.tmp, with_temp=False))
        st, _, body = self.kiln.post("/-/reload")
        self.assertEqual(st, 200, body)
        self.assertTrue(wait_for(lambda: self.count('test_gauge{job="temp"}') == 0, 10))
        self.assertEqual(self.count('up{job="temp"}'), 0)
        ts, _ = self.targets()
        self.assertNotIn("temp", ts)
        # the unchanged jobs kept scraping across the reload, once per interval
        time.sleep(2.5)
        after = self.value('count_over_time(up{job="good"}[1h])')
        self.assertGreaterEqual(after - before, 2)
        span = self.query('up{job="good"}[1h]')[0]["values"]
        times = [float(t) for t, _ in span]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(0.5 < g < 1.6 for g in gaps), gaps)


class TestFileSD(unittest.TestCase):
    """Targets from file_sd_configs: read at start, picked up again when
    the file changes, and stale markers when a target leaves the file."""

    def test_file_targets_follow_the_file(self):
        exporter = Exporter()
        kiln = Kiln()
        try:
            sd = os.path.join(kiln.tmp, "targets.json")
            t = f"127.0.0.1:{exporter.port}"
            with open(sd, "w") as f:
                json.dump([{"targets": [t], "labels": {"team": "a"}}], f)
            with open(kiln.config_path, "w") as f:
                f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: files
    file_sd_configs: [{{files: ["{kiln.tmp}/*.json"]}}]
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/(.*)'
        target_label: from_file
""")
            kiln.start()

            def series(q):
                st, body = kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
                return body["data"]["result"]
            self.assertTrue(wait_for(lambda: series('up{job="files",team="a"} == 1'), 10), kiln.read_log())
            r = series('test_gauge{job="files",path="/a"}')
            self.assertEqual(r[0]["metric"]["from_file"], "targets.json")
            # a second group with another team, then the first group goes away
            with open(sd + ".tmp", "w") as f:
                json.dump([{"targets": [t], "labels": {"team": "b"}}], f)
            os.rename(sd + ".tmp", sd)
            self.assertTrue(wait_for(lambda: series('up{job="files",team="b"} == 1'), 15), kiln.read_log())
            self.assertTrue(wait_for(lambda: not series('test_gauge{job="files",team="a"}'), 10))
            st, body = kiln.get_json("/api/v1/targets")
            teams = [x["labels"]["team"] for x in body["data"]["activeTargets"]]
            self.assertEqual(teams, ["b"])
            self.assertEqual(kiln.stop(), 0)
        finally:
            kiln.cleanup()
            exporter.stop()


class TestNodeExporterLikePrometheus(unittest.TestCase):
    """kiln and Prometheus 2.42 scrape the same node exporter with the same
    configuration; the series sets must be the same."""

    CONFIG = """global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{port}"]
        labels: {{site: lab}}
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: node_scrape_collector_.*
        action: drop
      - source_labels: [__name__, mode]
        regex: node_cpu_seconds_total;(idle|user)
        target_label: cpu_kind
        replacement: ${{1}}_time
"""

    @classmethod
    def setUpClass(cls):
        require(PROMETHEUS, NODE_EXPORTER)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-scrape-")
        cls.procs, cls.kiln = [], None
        try:
            cls.ne_port = free_port()
            cls.procs.append(Process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{cls.ne_port}"],
                                     os.path.join(cls.tmp, "node_exporter.log")))
            cfg = cls.CONFIG.format(port=cls.ne_port)
            cls.kiln = Kiln(config=cfg).start()
            path = os.path.join(cls.tmp, "prometheus.yml")
            with open(path, "w") as f:
                f.write(cfg)
            cls.prom_port = free_port()
            cls.prom = Process([PROMETHEUS, f"--config.file={path}",
                                f"--storage.tsdb.path={os.path.join(cls.tmp, 'prom-data')}",
                                f"--web.listen-address=127.0.0.1:{cls.prom_port}"],
                               os.path.join(cls.tmp, "prometheus.log"))
            cls.procs.append(cls.prom)
            if not wait_for(lambda: http_get(f"http://127.0.0.1:{cls.prom_port}/-/ready")[0] == 200, 30):
                raise RuntimeError("prometheus did not become ready:\n" + cls.prom.read_log()[-3000:])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop()
        if cls.kiln:
            code = cls.kiln.stop()
            log = cls.kiln.read_log()
            cls.kiln.cleanup()
            cls.kiln = None
            if code != 0:
                raise AssertionError(f"kiln exited with {code}:\n{log[-4000:]}")
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def series_now(self, port):
        q = urllib.parse.urlencode({"query": '{job="node"}'})
        st, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?{q}")
        self.assertEqual(st, 200, body)
        return {tuple(sorted(r["metric"].items())) for r in json.loads(body)["data"]["result"]}

    def test_same_series_as_prometheus(self):
        def both_scraped():
            k, p = self.series_now(self.kiln.port), self.series_now(self.prom_port)
            return (k, p) if len(k) > 100 and len(p) > 100 else None
        got = wait_for(both_scraped, 30, 0.5)
        self.assertIsNotNone(got, "both should have scraped the node exporter")
        # a few node exporter series can come and go between two scrapes:
        # compare again until two consecutive reads agree
        k, p = got
        for _ in range(10):
            if k == p:
                break
            time.sleep(1)
            k, p = self.series_now(self.kiln.port), self.series_now(self.prom_port)
        only_k = sorted(k - p)[:10]
        only_p = sorted(p - k)[:10]
        self.assertEqual(k, p, f"only in kiln: {only_k}\nonly in Prometheus: {only_p}")
        names = {dict(s)["__name__"] for s in k}
        self.assertNotIn("node_scrape_collector_success", names)
        self.assertTrue(any(dict(s).get("cpu_kind") == "idle_time" for s in k))
        self.assertIn("up", names)
        self.assertIn("scrape_series_added", names)


if __name__ == "__main__":
    unittest.main()
