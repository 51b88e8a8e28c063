"""The example rules of docs/examples/ (apm-rules.yml, the APM KPIs of an
HTTP service, and apm-prometheus.yml, the configuration that loads them):

- promtool and `kiln --check-rules` accept the rules file with the same
  output, and both refuse it with a misspelt template function; promtool
  accepts the configuration;
- kiln and Debian's Prometheus 2.42, each given the same rules (the alerts'
  `for` shortened to 2s, evaluation every second) and the same samples by
  remote write (two jobs, ten minutes of history on the 15 s grid, then one
  sample a series every 15 s), record the values computed here by hand from
  the data (within 1e-9), and fire the same alerts with the same rendered
  annotations in /api/v1/alerts: HighErrorRatio on the failing job,
  HighLatency on the slow one, Saturated on the busy instance;
- apm-rules.test.yml, the rules' unit tests, pass under `promtool test
  rules` and `kiln test rules` with the same output, and fail the same way
  when a threshold is changed;
- kiln started with apm-prometheus.yml lists the two groups and their rules
  in /api/v1/rules and the Alertmanager in /api/v1/alertmanagers.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import rwproto
from kilntest import KILN_BIN, PROMETHEUS, ROOT, Kiln, Process, free_port, http_get, require, wait_for

EXAMPLES = os.path.join(ROOT, "docs", "examples")
RULES = os.path.join(EXAMPLES, "apm-rules.yml")
CONFIG = os.path.join(EXAMPLES, "apm-prometheus.yml")
STEP_MS = 15000
HISTORY = 40  # samples before the first live one: ten minutes

# ---- the data: per instance, requests a second by code, the latency
# histogram's cumulative counts a second by le, and in-flight over the limit

LES = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
JOBS = {
    # checkout fails 10% of its requests and is fast
    "checkout": {
        "codes": {"200": 9.0, "500": 1.0},
        "buckets": [90 / 15, 135 / 15, 148 / 15, 10.0, 10.0, 10.0, 10.0],
        "in_flight": {"checkout-1:8080": 90.0, "checkout-2:8080": 30.0},
    },
    # search fails 1% (404s are not failures) and is slow
    "search": {
        "codes": {"200": 49.0, "404": 0.5, "500": 0.5},
        "buckets": [10.0, 20.0, 35.0, 45.0, 49.0, 50.0, 50.0],
        "in_flight": {"search-1:8080": 20.0, "search-2:8080": 20.0},
    },
}
LIMIT = 100.0


def series():
    """[(labels, value at sample k)] of every series sent."""
    out = []
    for job, d in JOBS.items():
        for inst, fl in d["in_flight"].items():
            base = [("instance", inst), ("job", job)]
            for code, r in d["codes"].items():
                out.append(([("__name__", "http_requests_total"), ("code", code), ("method", "GET")] + base,
                            lambda k, r=r: 1000.0 + k * r * 15))
            for le, r in zip(LES, d["buckets"]):
                out.append(([("__name__", "http_request_duration_seconds_bucket"), ("le", le)] + base,
                            lambda k, r=r: 1000.0 + k * r * 15))
            out.append(([("__name__", "http_requests_in_flight")] + base, lambda k, v=fl: v))
            out.append(([("__name__", "http_requests_in_flight_limit")] + base, lambda k: LIMIT))
    for ls, _ in out:
        ls.sort()  # remote write's rule, which kiln enforces
    return out


def quantile(q, les, cum):
    """histogram_quantile as Prometheus computes it, for one job's buckets."""
    rank = q * cum[-1]
    for i, c in enumerate(cum):
        if c >= rank:
            break
    if les[i] == "+Inf":
        return float(les[i - 1])
    start, below = (float(les[i - 1]), cum[i - 1]) if i > 0 else (0.0, 0.0)
    return start + (float(les[i]) - start) * (rank - below) / (cum[i] - below)


def expected():
    """{record name: {labels key: value}} computed from JOBS."""
    out = {}

    def put(name, labels, v):
        out.setdefault(name, {})[key(labels)] = v
    for job, d in JOBS.items():
        n = len(d["in_flight"])
        total = n * sum(d["codes"].values())
        errors = n * sum(r for c, r in d["codes"].items() if c.startswith("5"))
        put("job:http_requests:rate5m", {"job": job}, total)
        put("job:http_requests_errors:rate5m", {"job": job}, errors)
        put("job:http_requests_errors:ratio_rate5m", {"job": job}, errors / total)
        cum = [n * r for r in d["buckets"]]
        for le, c in zip(LES, cum):
            put("job_le:http_request_duration_seconds_bucket:rate5m", {"job": job, "le": le}, c)
        put("job:http_request_duration_seconds:p99_rate5m", {"job": job}, quantile(0.99, LES, cum))
        for inst, fl in d["in_flight"].items():
            put("job_instance:http_requests_in_flight:ratio", {"job": job, "instance": inst}, fl / LIMIT)
    return out


def key(labels):
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")


# the alerts that must fire, with their annotations as Prometheus renders them
FIRING = {
    ("HighErrorRatio", "job=checkout,severity=page"): {
        "summary": "checkout: 10% of requests fail",
        "description": "More than 5% of the requests to checkout have failed (5xx) for 5 minutes: "
                       "10% over the last 5 minutes.",
    },
    ("HighLatency", "job=search,severity=ticket"): {
        "summary": "search: p99 latency 1.75s",
        "description": "The 99th percentile of search's request latency has been above 500ms for 10 minutes; "
                       "it is 1.75s.",
    },
    ("Saturated", "instance=checkout-1:8080,job=checkout,severity=ticket"): {
        "summary": "checkout-1:8080 of checkout is at 90% of its capacity",
        "description": "checkout-1:8080 has served more than 80% of the requests it can hold at once "
                       "for 15 minutes (cluster eu-1).",
    },
}


class Feeder:
    """Sends HISTORY samples of every series to each url at once, then one
    sample of each every 15 s on the grid, until stop()."""

    def __init__(self, urls):
        self.urls, self.series = urls, series()
        self.t_last = int(time.time() * 1000) // STEP_MS * STEP_MS
        self.k = 1
        self.stopping = threading.Event()
        self.error = None
        self.thread = None

    def send(self, ks):
        body = rwproto.write_body([(ls, [(f(k), self.t_last + k * STEP_MS) for k in ks]) for ls, f in self.series])
        for url in self.urls:
            st, resp = post(url, body)
            if st // 100 != 2:
                raise AssertionError(f"remote write to {url}: {st} {resp[:200]!r}")

    def run(self):
        try:
            while not self.stopping.wait(max(0.0, (self.t_last + self.k * STEP_MS) / 1000 - time.time())):
                self.send([self.k])
                self.k += 1
        except Exception as e:
            self.error = e

    def start(self):
        self.send(range(-HISTORY, 1))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(30)


def post(url, body):
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(port, path):
    st, body = http_get(f"http://127.0.0.1:{port}{path}", timeout=30)
    if st != 200:
        raise AssertionError(f"GET {path}: {st} {body[:300]!r}")
    return json.loads(body)


def recorded(port, name):
    res = get_json(port, "/api/v1/query?" + urllib.parse.urlencode({"query": name}))["data"]["result"]
    return {key(s["metric"]): float(s["value"][1]) for s in res}


def firing(port):
    """{(alertname, other labels): (annotations, value)} of the firing alerts."""
    out = {}
    for a in get_json(port, "/api/v1/alerts")["data"]["alerts"]:
        if a["state"] == "firing":
            ls = dict(a["labels"])
            out[(ls.pop("alertname"), key(ls))] = (a["annotations"], float(a["value"]))
    return out


class TestRulesExample(unittest.TestCase):
    def test_check_rules(self):
        """promtool and kiln --check-rules accept the file with the same output."""
        require("promtool", KILN_BIN)
        p = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
        k = subprocess.run([KILN_BIN, "--check-rules", RULES], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS: 9 rules found", p.stdout)
        self.assertEqual(k.returncode, 0, k.stdout + k.stderr)
        self.assertEqual(k.stdout, p.stdout)

    def test_check_rules_typo(self):
        """A misspelt template function fails both checks, kiln's naming the line."""
        require("promtool", KILN_BIN)
        tmp = tempfile.mkdtemp(prefix="kiln-example-")
        try:
            bad = os.path.join(tmp, "apm-rules.yml")
            with open(RULES) as f:
                text = f.read()
            with open(bad, "w") as f:
                f.write(text.replace("humanizePercentage", "humanizePercent", 1))
            line = text[:text.index("humanizePercentage")].count("\n") + 1
            p = subprocess.run(["promtool", "check", "rules", bad], capture_output=True, text=True)
            k = subprocess.run([KILN_BIN, "--check-rules", bad], capture_output=True, text=True)
            self.assertEqual((p.returncode, k.returncode), (1, 1), p.stderr + k.stderr)
            for out in (p.stderr, k.stderr):
                self.assertIn('"HighErrorRatio": annotation "summary": template: __alert_HighErrorRatio:1: '
                              'function "humanizePercent" not defined', out)
            self.assertIn(f"{bad}:{line}:", k.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unit_tests(self):
        """apm-rules.test.yml passes under promtool and kiln test rules alike, and
        fails alike when the error-ratio threshold is raised above 10%."""
        require("promtool", KILN_BIN)
        tmp = tempfile.mkdtemp(prefix="kiln-example-")
        try:
            for name in ("apm-rules.yml", "apm-rules.test.yml"):
                shutil.copy(os.path.join(EXAMPLES, name), tmp)
            test = os.path.join(tmp, "apm-rules.test.yml")
            for broken in (False, True):
                if broken:
                    with open(os.path.join(tmp, "apm-rules.yml")) as f:
                        text = f.read()
                    with open(os.path.join(tmp, "apm-rules.yml"), "w") as f:
                        f.write(text.replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.2"))
                p = subprocess.run(["promtool", "test", "rules", test], capture_output=True, text=True)
                k = subprocess.run([KILN_BIN, "test", "rules", test], capture_output=True, text=True)
                self.assertEqual(p.returncode, int(broken), p.stdout + p.stderr)
                self.assertEqual((k.returncode, k.stdout, k.stderr), (p.returncode, p.stdout, p.stderr))
            self.assertIn('alertname: HighErrorRatio, time: 10m', k.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_check_config(self):
        """promtool accepts the example configuration and the rules it names."""
        require("promtool")
        p = subprocess.run(["promtool", "check", "config", CONFIG], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS: 9 rules found", p.stdout)

    def test_config_loads(self):
        """kiln started with the example configuration has its rules and Alertmanager."""
        tmp = tempfile.mkdtemp(prefix="kiln-example-")
        k = Kiln()
        try:
            for f in ("apm-rules.yml", "apm-prometheus.yml"):
                shutil.copy(os.path.join(EXAMPLES, f), tmp)
            k.args[-1] = f"--config.file={tmp}/apm-prometheus.yml"
            k.start()
            st, rules = k.get_json("/api/v1/rules")
            self.assertEqual(st, 200, rules)
            groups = rules["data"]["groups"]
            self.assertEqual([g["name"] for g in groups], ["apm-http-recording", "apm-http-alerts"])
            self.assertEqual([r["name"] for r in groups[1]["rules"]], ["HighErrorRatio", "HighLatency", "Saturated"])
            self.assertEqual(len(groups[0]["rules"]), 6)
            self.assertTrue(all(g["file"] == f"{tmp}/apm-rules.yml" for g in groups), groups)
            st, ams = k.get_json("/api/v1/alertmanagers")
            self.assertEqual(st, 200, ams)
            self.assertEqual([a["url"] for a in ams["data"]["activeAlertmanagers"]],
                             ["http://localhost:9093/api/v2/alerts"])
            self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
        finally:
            k.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_rules_over_data(self):
        """kiln and Prometheus record the hand-computed values and fire the same alerts."""
        require(PROMETHEUS, KILN_BIN)
        tmp = tempfile.mkdtemp(prefix="kiln-example-")
        rules = os.path.join(tmp, "apm-rules.yml")
        with open(RULES) as f:
            text = f.read()
        with open(rules, "w") as f:
            f.write(re.sub(r"(?m)^(\s+for: )\S+$", r"\g<1>2s", text))
        cfg = (f"global:\n  evaluation_interval: 1s\n  scrape_interval: 1h\n"
               f"  external_labels: {{cluster: eu-1}}\nrule_files: [{rules}]\n")
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write(cfg)
        pport = free_port()
        # cleanups run last first, each even when another fails
        self.addCleanup(shutil.rmtree, tmp, True)
        prom = Process([PROMETHEUS, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/p",
                        f"--web.listen-address=127.0.0.1:{pport}", "--web.enable-remote-write-receiver"],
                       os.path.join(tmp, "prometheus.log"))
        self.addCleanup(prom.stop)
        kiln = Kiln(config=cfg)
        self.addCleanup(kiln.cleanup)
        kiln.start()
        self.assertTrue(wait_for(lambda: http_get(f"http://127.0.0.1:{pport}/-/ready")[0] == 200, 30),
                        prom.read_log()[-3000:])
        feeder = Feeder([f"http://127.0.0.1:{port}/api/v1/write" for port in (kiln.port, pport)])
        self.addCleanup(feeder.stop)
        feeder.start()

        want_alerts = set(FIRING)
        for name, port in (("kiln", kiln.port), ("prometheus", pport)):
            got = wait_for(lambda: set(firing(port)) >= want_alerts and firing(port), 60, 0.5)
            self.assertTrue(got, f"{name}: alerts firing: {firing(port)}")
        self.assertIsNone(feeder.error)

        want = expected()
        for name, port in (("kiln", kiln.port), ("prometheus", pport)):
            for record, values in want.items():
                got = recorded(port, record)
                self.assertEqual(set(got), set(values), f"{name}: {record}")
                for k, v in values.items():
                    self.assertAlmostEqual(got[k], v, delta=1e-9 * abs(v), msg=f"{name}: {record}{{{k}}}")

        k_alerts, p_alerts = firing(kiln.port), firing(pport)
        for a, annotations in FIRING.items():
            self.assertEqual(p_alerts[a][0], annotations, f"prometheus: {a}")
            self.assertEqual(k_alerts[a][0], annotations, f"kiln: {a}")
            self.assertAlmostEqual(k_alerts[a][1], p_alerts[a][1], delta=1e-9 * abs(p_alerts[a][1]))
        self.assertEqual(set(k_alerts), set(p_alerts))
        feeder.stop()
        self.assertEqual(kiln.stop(), 0, kiln.read_log()[-3000:])

if __name__ == "__main__":
    unittest.main()
