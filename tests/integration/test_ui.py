"""The web UI in a real browser: kiln scrapes a real prometheus-node-exporter
and a dead target, evaluates an always-firing alerting rule and holds 200
remote-written series of the last hour; tests/browser/ui.mjs drives Debian's
headless Chromium (puppeteer-core) over every page and reports what it saw,
and these tests assert it against kiln's own API.  Screenshots go to
$KILN_UI_SHOTS (or a temporary folder, printed).  Also the serving: redirects,
ETag, gzip."""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from kilntest import ROOT, NODE_EXPORTER, Kiln, Process, free_port, require, wait_for
import rwproto

RULES = """
groups:
  - name: ui
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1) > 0
        labels: {severity: page}
        annotations: {summary: "fires for the UI test"}
      - alert: NeverFires
        expr: vector(0) > 1
      - record: job:up:sum
        expr: sum by (job) (up)
"""


# the tree view's expression, its nodes in document order, as printed back
TREE_EXPR = "sum by (job) (up) * on (job) group_left count by (job) (ui_bench_series)"
TREE_NODES = ["sum by (job) (up) * on (job) group_left () count by (job) (ui_bench_series)", "sum by (job) (up)", "up",
              "count by (job) (ui_bench_series)", "ui_bench_series"]
# 20 windows of 3,580 samples sorted at every step of the subquery's hour
SLOW_EXPR = "sum_over_time(sum(quantile_over_time(0.5, ui_slow_series[1h]))[1h:{step}])"


class UITest(unittest.TestCase):
    report = None

    @classmethod
    def setUpClass(cls):
        require("chromium", "node", NODE_EXPORTER)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-ui-")
        cls.shots = os.environ.get("KILN_UI_SHOTS") or tempfile.mkdtemp(prefix="kiln-ui-shots-")
        os.makedirs(cls.shots, exist_ok=True)
        ne_port = free_port()
        cls.dead = f"127.0.0.1:{free_port()}"
        cls.ne = Process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}", "--collector.disable-defaults",
                          "--collector.cpu", "--collector.loadavg", "--collector.meminfo", "--collector.time"],
                         os.path.join(cls.tmp, "node-exporter.log"))
        cls.ne_target = f"127.0.0.1:{ne_port}"
        rules = os.path.join(cls.tmp, "rules.yml")
        with open(rules, "w") as f:
            f.write(RULES)
        cls.kiln = Kiln(config=f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{rules}']
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['{cls.ne_target}']}}]
  - job_name: dead
    static_configs: [{{targets: ['{cls.dead}']}}]
""", args=["--web.enable-otlp-receiver"])
        try:
            cls.kiln.start()
            cls.write_bench_series()
            cls.write_histogram()
            ok = wait_for(lambda: cls.targets_settled() and cls.firing(), timeout=30)
            assert ok, "targets or alert did not settle:\n" + cls.kiln.read_log()[-3000:]
            time.sleep(2)  # two more scrapes, so the range query has points
            cls.base = f"http://{cls.kiln.addr}"
            cls.expr = '{__name__=~"node_load1|up"}'
            cls.slow_expr, cls.slow_probe = cls.slow_query()
            opts = {"expr": cls.expr, "metricPrefix": "node_loa", "benchExpr": "ui_bench_series", "benchRuns": 5,
                    "treeExpr": TREE_EXPR, "treeLeaf": "up", "slowExpr": cls.slow_expr, "histExpr": "ui_hist_seconds"}
            p = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "ui.mjs"), cls.base, cls.shots,
                                json.dumps(opts)], capture_output=True, text=True, timeout=480)
            lines = p.stdout.strip().splitlines()
            cls.report = json.loads(lines[-1]) if lines else {}
            cls.browser_rc, cls.browser_err = p.returncode, p.stderr
            print(f"\nUI screenshots in {cls.shots}")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kiln.stop()
        cls.kiln.cleanup()
        cls.ne.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def write_bench_series(cls):
        """200 series, a sample every 15s over the last hour (the head takes
        nothing older than an hour before its newest sample); and for the
        slow query 20 series with a sample every second, in no order (each
        step sorts 20 x 3,580 samples: much work for few points, far from the
        query's sample limit)."""
        now = int(time.time()) * 1000
        series = []
        for i in range(200):
            samples = [(float((i * 7 + k) % 50 + i), now - 3585_000 + k * 15_000) for k in range(240)]
            series.append(([("__name__", "ui_bench_series"), ("instance", f"host-{i:03d}"), ("job", "bench")], samples))
        for i in range(20):
            samples = [(float((k * 7919 + i) % 1000), now - 3580_000 + k * 1000) for k in range(3580)]
            series.append(([("__name__", "ui_slow_series"), ("instance", f"host-{i:03d}"), ("job", "bench")], samples))
        st, _, body = cls.kiln.post("/api/v1/write", body=rwproto.write_body(series),
                                    headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                                             "X-Prometheus-Remote-Write-Version": "0.1.0"})
        assert st == 204, (st, body)

    @classmethod
    def write_histogram(cls):
        """A native histogram (an OTLP exponential histogram): ui_hist_seconds."""
        t = str(int(time.time()) * 10**9)
        body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "ui.hist", "unit": "s", "exponentialHistogram": {
            "aggregationTemporality": 2, "dataPoints": [{"timeUnixNano": t, "count": "21", "sum": 40.5, "scale": 0,
                                                         "zeroCount": "1", "positive": {"offset": 0,
                                                                                        "bucketCounts": ["2", "5", "9", "4"]}}]}}]}]}]}
        st, _, b = cls.kiln.post("/api/v1/otlp/v1/metrics", body=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
        assert (st, json.loads(b)) == (200, {}), (st, b)

    @classmethod
    def slow_query(cls):
        """A query of about 10 s on this machine and build: a subquery over
        the 200 series whose step is scaled from a timed probe."""
        def timed(step_ms):
            t0 = time.monotonic()
            st, j = cls.kiln.get_json("/api/v1/query?query=" + urlq(SLOW_EXPR.format(step=f"{step_ms}ms")))
            assert st == 200, j
            return time.monotonic() - t0
        step = 20000
        probe = timed(step)
        while probe < 2.0 and step > 8:  # a probe long enough to scale from
            step = max(1, int(step * probe / 3.0)) if probe > 0.3 else step // 4
            probe = timed(step)
        final = max(2, int(step * probe / 12.0))  # aim a little over 10 s: the load varies
        return SLOW_EXPR.format(step=f"{final}ms"), probe

    @classmethod
    def targets_settled(cls):
        st, j = cls.kiln.get_json("/api/v1/targets")
        h = {t["labels"]["job"]: t for t in j["data"]["activeTargets"]}
        return h["node"]["health"] == "up" and h["dead"]["health"] == "down"

    @classmethod
    def firing(cls):
        st, j = cls.kiln.get_json("/api/v1/alerts")
        return any(a["labels"]["alertname"] == "AlwaysFiring" and a["state"] == "firing" for a in j["data"]["alerts"])

    def setUp(self):
        self.assertEqual(self.browser_rc, 0, (self.report.get("fatal"), self.browser_err[-3000:]))

    def test_no_console_error_or_failed_request(self):
        self.assertEqual(self.report["consoleErrors"], [])
        self.assertEqual(self.report["failedRequests"], [])

    def test_redirects(self):
        self.assertEqual(self.report["rootLandsOn"], "/query")
        self.assertEqual(self.report["graphRedirect"], {"path": "/query", "expr": self.expr, "range": "15m"})

    def test_table_rows_are_the_instant_query(self):
        st, j = self.kiln.get_json("/api/v1/query?query=" + urlq(self.expr))
        want = sorted(series_name(r["metric"]) for r in j["data"]["result"])
        self.assertGreaterEqual(len(want), 2)
        self.assertEqual(self.report["tableErrors"], [])
        self.assertEqual(sorted(r[0] for r in self.report["tableRows"]), want)
        for row in self.report["tableRows"]:
            float(row[1])  # a number in the value column

    def test_graph_draws_one_series_per_result(self):
        st, j = self.kiln.get_json("/api/v1/query?query=" + urlq(self.expr))
        n = len(j["data"]["result"])
        self.assertEqual(self.report["graphErrors"], [])
        self.assertEqual(self.report["graph"], {"series": n, "legend": n, "canvas": True, "tab": "graph"})

    def test_completion_offers_the_metric(self):
        self.assertIn("node_load1", self.report["completion"])
        self.assertIn("node_load15", self.report["completion"])
        self.assertNotIn("up", self.report["completion"])

    def test_targets_page(self):
        t = {x["url"]: x for x in self.report["targets"]}
        up = t[f"http://{self.ne_target}/metrics"]
        down = t[f"http://{self.dead}/metrics"]
        self.assertEqual(up["health"], "up")
        self.assertEqual(up["error"], "")
        self.assertEqual(down["health"], "down")
        st, j = self.kiln.get_json("/api/v1/targets")
        api_err = [x["lastError"] for x in j["data"]["activeTargets"] if x["labels"]["job"] == "dead"][0]
        self.assertIn("connect", down["error"])
        self.assertEqual(down["error"], api_err)

    def test_alerts_page(self):
        a = {x["name"]: x for x in self.report["alerts"]}
        self.assertEqual(a["AlwaysFiring"]["state"], "firing")
        self.assertEqual(a["AlwaysFiring"]["alerts"], 1)
        self.assertEqual(a["NeverFires"]["state"], "inactive")

    def test_status_pages(self):
        pages = self.report["pages"]
        for name, p in pages.items():
            self.assertEqual(p["errors"], [], name)
        self.assertIn("job:up:sum", pages["rules"]["text"])
        self.assertIn("AlwaysFiring", pages["rules"]["text"])
        self.assertIn(self.dead, pages["service-discovery"]["text"])
        self.assertIn("version", pages["status"]["text"])
        self.assertIn("scrape_configs", pages["config"]["text"])
        self.assertIn("--web.listen-address", pages["flags"]["text"])
        self.assertIn("ui_bench_series", pages["tsdb-status"]["text"])
        for name in ("status", "flags", "tsdb-status", "rules", "service-discovery"):
            self.assertGreater(pages[name]["rows"], 0, name)

    def test_screenshots(self):
        for name in ("query-table", "query-graph", "query-completion", "targets", "alerts", "rules", "status",
                     "config", "flags", "tsdb-status", "service-discovery", "query-graph-200", "query-tree",
                     "query-tree-node", "query-slow", "query-histogram"):
            with open(os.path.join(self.shots, name + ".png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)

    def test_graph_of_200_series_renders_in_time(self):
        runs = self.report["bench"]
        self.assertEqual([r["series"] for r in runs], [200] * len(runs))
        ms = sorted(r["ms"] for r in runs)
        print(f"\nUI graph render, 200 series x 1h: median {ms[len(ms) // 2]:.1f} ms, runs {[round(x, 1) for x in ms]}")
        self.assertLess(ms[len(ms) // 2], 300)


    def test_native_histogram_in_the_table(self):
        st, j = self.kiln.get_json("/api/v1/query?query=ui_hist_seconds")
        want = j["data"]["result"][0]["histogram"][1]
        got = self.report["hist"]
        self.assertEqual(got["summary"], f"count: {want['count']}   sum: {want['sum']}")
        self.assertEqual(got["bars"], [b[3] for b in want["buckets"]])
        self.assertEqual(len(got["rows"]), len(want["buckets"]))
        self.assertEqual(got["rows"][0][1], want["buckets"][0][3])

    def test_tree_view(self):
        self.assertEqual(self.report["treeUrl"], "1")
        nodes = self.report["tree"]
        self.assertEqual([n["expr"] for n in nodes], TREE_NODES)
        self.assertEqual([n["head"] for n in nodes],
                         ["* on (job) group_left ()", "sum by (job)", "up", "count by (job)", "ui_bench_series"])
        self.assertEqual([n["sel"] for n in nodes], [True, False, False, False, False])
        for n in nodes:  # each node's count is the API's for its text
            st, j = self.kiln.get_json("/api/v1/query?query=" + urlq(n["expr"]))
            self.assertEqual(st, 200, n)
            self.assertEqual(n["results"], str(len(j["data"]["result"])), n)
        self.assertEqual(nodes[2]["results"], "2")  # up: the node exporter and the dead target
        leaf = self.report["treeLeaf"]
        self.assertEqual(leaf["note"], "up")
        self.assertEqual(leaf["sel"], ["up"])
        st, j = self.kiln.get_json("/api/v1/query?query=up")
        self.assertEqual(sorted(leaf["rows"]), sorted(series_name(r["metric"]) for r in j["data"]["result"]))

    def test_page_responsive_during_a_slow_query(self):
        r = self.report["slow"]
        print(f"\nUI during a slow query ({r['slowStats'].strip()}; probe {self.slow_probe:.2f} s): add panel "
              f"{r['addPanelMs']:.1f} ms, completion {r['completionMs']:.1f} ms, quick query {r['quickMs'][0]:.1f} ms, "
              f"worst main-thread stall {r['stallMs']:.1f} ms")
        load_ms = float(r["slowStats"].split("Load time: ")[1].split("ms")[0])
        self.assertGreater(load_ms, 5000)  # it was a slow query
        self.assertTrue(r["slowStillLoading"])  # the measures below were taken while it ran
        self.assertEqual(r["slowErrors"], [])
        self.assertEqual(r["slowRows"], 1)
        self.assertGreater(r["addPanelMs"], 0)
        self.assertLess(r["addPanelMs"], 500)
        self.assertIn("node_load1", r["completion"])
        self.assertLess(r["completionMs"], 2000)
        self.assertEqual(r["quickMs"][1], "42")
        self.assertLess(r["quickMs"][0], 2000)
        self.assertLess(r["stallMs"], 500)


class UIServingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kiln = Kiln()
        cls.kiln.start()

    @classmethod
    def tearDownClass(cls):
        cls.kiln.stop()
        cls.kiln.cleanup()

    def test_root_and_graph_redirect(self):
        st, h, _ = self.kiln.get("/")
        self.assertEqual((st, h["location"]), (302, "./query"))
        st, h, _ = self.kiln.get("/graph?g0.expr=up&g1.tab=0")
        self.assertEqual((st, h["location"]), (302, "query?g0.expr=up&g1.tab=0"))

    def test_pages_answer_the_app(self):
        for p in ("/query", "/alerts", "/rules", "/targets", "/service-discovery", "/status", "/config", "/flags",
                  "/tsdb-status"):
            st, h, body = self.kiln.get(p)
            self.assertEqual(st, 200, p)
            self.assertTrue(h["content-type"].startswith("text/html"), p)
            self.assertIn(b'src="assets/app.js"', body)

    def test_etag_gzip_and_304(self):
        st, h, plain = self.kiln.get("/assets/app.js")
        self.assertEqual(st, 200)
        self.assertNotIn("content-encoding", h)
        self.assertEqual(h["cache-control"], "no-cache")
        etag = h["etag"]
        st, h2, unzipped = self.kiln.get("/assets/app.js", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, h2["content-encoding"], h2["etag"]), (200, "gzip", etag))
        self.assertEqual(unzipped, plain)
        self.assertLess(int(h2["content-length"]), len(plain) // 2)
        st, h3, body = self.kiln.get("/assets/app.js", headers={"If-None-Match": etag})
        self.assertEqual((st, body), (304, b""))
        st, _, _ = self.kiln.get("/assets/app.js", headers={"If-None-Match": '"other"'})
        self.assertEqual(st, 200)

    def test_unknown_asset_is_404(self):
        self.assertEqual(self.kiln.get("/assets/nope.js")[0], 404)
        self.assertEqual(self.kiln.get("/assets/index.html")[0], 404)
        self.assertEqual(self.kiln.get("/nope")[0], 404)

    def test_ui_weight_under_300kb_gzipped(self):
        total = 0
        for p in ("/query", "/assets/app.js", "/assets/app.css"):
            st, h, _ = self.kiln.get(p, headers={"Accept-Encoding": "gzip"})
            self.assertEqual(st, 200, p)
            total += int(h["content-length"])
        print(f"\nUI weight: {total} bytes gzipped")
        self.assertLess(total, 300 * 1024)


class PrefixedKiln(Kiln):
    """A kiln whose routes are under a prefix: request() adds it (Kiln.request
    asks without it)."""
    prefix = "/kiln"

    def request(self, method, path, **kw):
        return super().request(method, self.prefix + path, **kw)


class UIRoutePrefixTest(unittest.TestCase):
    """--web.external-url's path is the route prefix (no --web.route-prefix
    given), as in Prometheus; the UI and the API answer under it only."""

    @classmethod
    def setUpClass(cls):
        cls.kiln = PrefixedKiln(args=["--web.external-url=http://proxy.example:8080/kiln/"])
        cls.kiln.start()

    @classmethod
    def tearDownClass(cls):
        cls.kiln.stop()
        cls.kiln.cleanup()

    def test_routes_are_under_the_prefix(self):
        for p in ("/query", "/-/ready", "/metrics", "/api/v1/query?query=1", "/assets/app.js"):
            self.assertEqual(self.kiln.get(p)[0], 200, p)
        for p in ("/query", "/-/ready", "/api/v1/query?query=1", "/kilnx/query", "/assets/app.js"):
            self.assertEqual(Kiln.request(self.kiln, "GET", p)[0], 404, p)

    def test_redirects(self):
        for p in ("/", "/kiln"):
            st, h, _ = Kiln.request(self.kiln, "GET", p)
            self.assertEqual((st, h["location"]), (302, "/kiln/"), p)
        st, h, _ = self.kiln.get("/")
        self.assertEqual((st, h["location"]), (302, "./query"))

    def test_flag_wins_over_the_external_url(self):
        k = PrefixedKiln(args=["--web.external-url=http://proxy.example/kiln/", "--web.route-prefix=/other/"])
        k.prefix = "/other"
        try:
            k.start()
            self.assertEqual(Kiln.request(k, "GET", "/kiln/-/ready")[0], 404)
            st, j = k.get_json("/api/v1/status/flags")
            self.assertEqual((st, j["data"]["web.route-prefix"]), (200, "/other/"))
        finally:
            k.stop()
            k.cleanup()

    def test_browser_under_the_prefix(self):
        require("chromium", "node")
        with tempfile.TemporaryDirectory() as shots:
            p = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "ui.mjs"),
                                f"http://{self.kiln.addr}/kiln", shots, json.dumps({"smoke": True, "expr": "vector(7)"})],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr[-2000:])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(r["rootLandsOn"], "/kiln/query")
        self.assertEqual(r["tableRows"], [["{}", "7"]])
        self.assertEqual(r["statusErrors"], [])
        self.assertEqual(r["consoleErrors"], [])
        self.assertEqual(r["failedRequests"], [])


def urlq(s):
    import urllib.parse
    return urllib.parse.quote(s)


def series_name(m):
    name = m.get("__name__", "")
    rest = [f"{k}={json.dumps(v)}" for k, v in sorted(m.items()) if k != "__name__"]
    return f"{name}{{{', '.join(rest)}}}" if rest or not name else name


if __name__ == "__main__":
    unittest.main()
