"""The rule manager end to end, with the real peers: kiln scrapes a small
exporter whose value the test sets, evaluates a recording rule and alerting
rules every second, and sends alerts to a real Alertmanager (Debian's
prometheus-alertmanager); Debian's Prometheus 2.42 runs the same rule file
over the same exporter for /api/v1/rules and /api/v1/alerts to be compared.

The tests run in order on one setup (a_ to h_): recording rule, alert
pending then firing and delivered (external labels and alert relabeling
applied), the API against Prometheus, reloads (a bad rule file, a changed
group), a restart in the middle of a `for`, Alertmanager down then up, and
the resolved alert delivered.
"""
import calendar
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

from kilntest import PROMETHEUS, Kiln, Process, free_port, http_get, require, wait_for

AM_BIN = "/usr/bin/prometheus-alertmanager"

RULES = """groups:
  - name: rec
    interval: 1s
    rules:
      - record: svc:demo_value:sum
        expr: sum by (svc) (demo_value)
  - name: alerts
    interval: 1s
    rules:
      - alert: HighValue
        expr: svc:demo_value:sum > 5
        for: 2s
        labels:
          severity: page
          drop_me: "yes"
        annotations:
          summary: "{{ $labels.svc }} is at {{ $value }}"
          cluster: "{{ $externalLabels.cluster }}"
      - alert: SlowAlert
        expr: svc:demo_value:sum > 5
        for: 10m
        labels:
          severity: ticket
"""

# the group "rec" changed (one rule more), "alerts" as it was
RULES_CHANGED = RULES.replace("""        expr: sum by (svc) (demo_value)
""", """        expr: sum by (svc) (demo_value)
      - record: svc:demo_value:double
        expr: svc:demo_value:sum * 2
""")

RULES_BAD = RULES.replace("sum by (svc) (demo_value)", "sum by (svc) (demo_value")

CONFIG = """global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels: {{cluster: c1}}
rule_files: ['{rules}']
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ['127.0.0.1:{exporter}']}}]
"""

ALERTING = """alerting:
  alert_relabel_configs:
    - action: labeldrop
      regex: drop_me
  alertmanagers:
    - static_configs: [{{targets: ['127.0.0.1:{am}']}}]
"""


class Exporter:
    """Serves demo_value{svc="a"} with the value the test sets."""

    def __init__(self):
        exporter = self
        self.value = 3

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = f'# TYPE demo_value gauge\ndemo_value{{svc="a"}} {exporter.value}\n'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def parse_time(s):
    """An RFC 3339 time in UTC ("...Z", up to nanoseconds) as float seconds."""
    assert s.endswith("Z"), s
    whole, _, frac = s[:-1].partition(".")
    t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)


def get_json(url):
    st, body = http_get(url)
    if st != 200:
        return None
    return json.loads(body)


def metric_value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def vector(result):
    """An instant vector as sorted (labels, value) pairs."""
    return sorted((json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in result)


TIME_KEYS = {"evaluationTime", "lastEvaluation", "activeAt", "keepFiringSince"}


def shape(v):
    """The keys at every level (lists by their first element), times' values left out."""
    if isinstance(v, dict):
        return {k: (None if k in TIME_KEYS else shape(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def without_times(v):
    if isinstance(v, dict):
        return {k: without_times(x) for k, x in v.items() if k not in TIME_KEYS}
    if isinstance(v, list):
        return [without_times(x) for x in v]
    return v


class TestRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(AM_BIN, PROMETHEUS)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-rules-")
        cls.exporter = Exporter()
        cls.rules_path = os.path.join(cls.tmp, "rules.yml")
        with open(cls.rules_path, "w") as f:
            f.write(RULES)
        cls.am_port = free_port()
        with open(os.path.join(cls.tmp, "am.yml"), "w") as f:
            f.write("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
        cls.am = None
        cls.start_am("am1")
        cls.config = CONFIG.format(rules=cls.rules_path, exporter=cls.exporter.port) + ALERTING.format(am=cls.am_port)
        cls.kiln_args = ["--web.enable-lifecycle", "--rules.alert.resend-delay=1s",
                         "--rules.alert.for-grace-period=1s", "--web.external-url=http://kiln.example:9090/"]
        cls.kilns = []
        cls.prom = None
        try:
            cls.kiln = Kiln(args=cls.kiln_args, config=cls.config)
            cls.kilns.append(cls.kiln)
            cls.kiln.start()
            prom_cfg = os.path.join(cls.tmp, "prometheus.yml")
            with open(prom_cfg, "w") as f:
                f.write(CONFIG.format(rules=cls.rules_path, exporter=cls.exporter.port))
            cls.prom_port = free_port()
            cls.prom = Process([PROMETHEUS, f"--config.file={prom_cfg}", f"--storage.tsdb.path={cls.tmp}/prom",
                                f"--web.listen-address=127.0.0.1:{cls.prom_port}",
                                "--rules.alert.for-grace-period=1s"], os.path.join(cls.tmp, "prometheus.log"))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start_am(cls, tag):
        cls.am = Process([AM_BIN, f"--config.file={cls.tmp}/am.yml", f"--storage.path={cls.tmp}/{tag}",
                          f"--web.listen-address=127.0.0.1:{cls.am_port}", "--cluster.listen-address="],
                         os.path.join(cls.tmp, f"{tag}.log"))
        ok = wait_for(lambda: http_get(f"http://127.0.0.1:{cls.am_port}/-/ready", timeout=1)[0] == 200,
                      timeout=20, step=0.1)
        assert ok, "alertmanager did not start:\n" + cls.am.read_log()

    @classmethod
    def tearDownClass(cls):
        for p in (cls.am, cls.prom):
            if p:
                p.stop()
        # the later kilns use the first one's data directory: every kiln stops before any is cleaned up
        codes = [(k.stop(), k.read_log()) for k in reversed(cls.kilns)]
        for k in cls.kilns:
            k.cleanup()
        cls.exporter.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for code, log in codes:
            if code not in (0, None):
                raise AssertionError(f"kiln exited with {code}:\n{log[-4000:]}")

    # ---- helpers ----

    def alerts(self, name, port=None):
        """kiln's (or Prometheus') active alerts named name."""
        if port is None:
            st, d = self.kiln.get_json("/api/v1/alerts")
        else:
            d = get_json(f"http://127.0.0.1:{port}/api/v1/alerts")
            st = 200 if d else None
        if st != 200:
            return []
        return [a for a in d["data"]["alerts"] if a["labels"]["alertname"] == name]

    def am_alerts(self, name):
        d = get_json(f"http://127.0.0.1:{self.am_port}/api/v2/alerts")
        return [a for a in d or [] if a["labels"].get("alertname") == name]

    def am_metric(self, series):
        st, body = http_get(f"http://127.0.0.1:{self.am_port}/metrics")
        return metric_value(body.decode(), series) if st == 200 else None

    def query(self, expr):
        st, d = self.kiln.get_json("/api/v1/query?query=" + urllib.parse.quote(expr))
        self.assertEqual(st, 200, d)
        return d["data"]["result"]

    def groups(self, path="/api/v1/rules"):
        st, d = self.kiln.get_json(path)
        self.assertEqual(st, 200, d)
        return {g["name"]: g for g in d["data"]["groups"]}

    def wait_state(self, name, state, timeout=15):
        got = wait_for(lambda: [a for a in self.alerts(name) if a["state"] == state], timeout=timeout)
        self.assertTrue(got, f"{name} never {state}; alerts: {self.kiln.get_json('/api/v1/alerts')}\n"
                             f"{self.kiln.read_log()[-3000:]}")
        return got[0]

    # ---- the tests, in order ----

    def test_a_recording_rule(self):
        got = wait_for(lambda: self.query("svc:demo_value:sum"), timeout=15)
        self.assertTrue(got, self.kiln.read_log()[-3000:])
        self.assertEqual(got[0]["metric"], {"__name__": "svc:demo_value:sum", "svc": "a"})
        self.assertEqual(got[0]["value"][1], "3")
        m = self.kiln.metrics()
        key = f'rule_group="{self.rules_path};rec"'
        self.assertEqual(m[f"kiln_rule_group_interval_seconds{{{key}}}"], 1)
        self.assertEqual(m[f"kiln_rule_group_rules{{{key}}}"], 1)
        self.assertGreaterEqual(m[f"kiln_rule_group_iterations_total{{{key}}}"], 1)
        self.assertEqual(m[f"kiln_rule_group_iterations_missed_total{{{key}}}"], 0)
        self.assertGreaterEqual(m[f"kiln_rule_evaluations_total{{{key}}}"], 1)
        self.assertEqual(m[f"kiln_rule_evaluation_failures_total{{{key}}}"], 0)
        self.assertIn(f"kiln_rule_group_last_duration_seconds{{{key}}}", m)
        self.assertGreater(m[f"kiln_rule_group_last_evaluation_timestamp_seconds{{{key}}}"], time.time() - 60)
        st, d = self.kiln.get_json("/api/v1/alertmanagers")
        self.assertEqual(d["data"], {"activeAlertmanagers": [{"url": f"http://127.0.0.1:{self.am_port}/api/v2/alerts"}],
                                     "droppedAlertmanagers": []})

    def test_b_alert_pending_firing_delivered(self):
        self.exporter.value = 10
        pending = self.wait_state("HighValue", "pending")
        active_at = parse_time(pending["activeAt"])
        self.wait_state("HighValue", "firing")
        got = wait_for(lambda: self.am_alerts("HighValue"), timeout=10, step=0.02)
        seen = time.time()
        self.assertTrue(got, "HighValue never reached Alertmanager:\n" + self.kiln.read_log()[-3000:])
        latency = seen - (active_at + 2)
        print(f"\n  alert in Alertmanager {latency:.3f} s after its `for` elapsed (interval 1 s)")
        # within one evaluation interval after `for`, with room for the sanitized build and polling
        self.assertLess(latency, 1.0 + 1.0)
        a = got[0]
        # external labels added, alert_relabel_configs applied (drop_me dropped), templates expanded
        self.assertEqual(a["labels"], {"alertname": "HighValue", "severity": "page", "svc": "a", "cluster": "c1"})
        self.assertEqual(a["annotations"], {"summary": "a is at 10", "cluster": "c1"})
        self.assertTrue(a["generatorURL"].startswith("http://kiln.example:9090/graph?g0.expr="), a)
        # kiln's own view keeps the rule's labels
        self.assertEqual(self.alerts("HighValue")[0]["labels"],
                         {"alertname": "HighValue", "severity": "page", "svc": "a", "drop_me": "yes"})
        type(self).slow_active_at = parse_time(self.wait_state("SlowAlert", "pending")["activeAt"])

    def test_c_api_matches_prometheus(self):
        # Prometheus 2.42 over the same exporter with the same rules, once its HighValue fires too
        ok = wait_for(lambda: [a for a in self.alerts("HighValue", self.prom_port) if a["state"] == "firing"],
                      timeout=20, step=0.2)
        self.assertTrue(ok, "Prometheus' HighValue never fired:\n" + self.prom.read_log()[-3000:])
        prom = get_json(f"http://127.0.0.1:{self.prom_port}/api/v1/rules")["data"]
        kiln = self.kiln.get_json("/api/v1/rules")[1]["data"]
        pg = {g["name"]: g for g in prom["groups"]}
        kg = {g["name"]: g for g in kiln["groups"]}
        self.assertEqual(sorted(kg), sorted(pg))
        for name in pg:
            self.assertEqual(shape(kg[name]), shape(pg[name]), name)
            self.assertEqual(without_times(kg[name]), without_times(pg[name]), name)
        prom_alerts = get_json(f"http://127.0.0.1:{self.prom_port}/api/v1/alerts")["data"]
        kiln_alerts = self.kiln.get_json("/api/v1/alerts")[1]["data"]
        key = lambda a: a["labels"]["alertname"]
        self.assertEqual(shape(kiln_alerts), shape(prom_alerts))
        self.assertEqual(sorted(without_times(kiln_alerts["alerts"]), key=key),
                         sorted(without_times(prom_alerts["alerts"]), key=key))
        # the series the rules wrote: the recording rule's and ALERTS (ALERTS_FOR_STATE's value is activeAt)
        for expr in ("svc:demo_value:sum", "ALERTS", "count by (alertname) (ALERTS_FOR_STATE)"):
            pr = get_json(f"http://127.0.0.1:{self.prom_port}/api/v1/query?query=" + urllib.parse.quote(expr))
            self.assertEqual(vector(self.query(expr)), vector(pr["data"]["result"]), expr)
        self.assertEqual(len(self.query("ALERTS")), 2)  # HighValue firing, SlowAlert pending
        # the filters
        rec = self.groups("/api/v1/rules?type=record")
        self.assertEqual(list(rec), ["rec"])
        self.assertEqual(list(self.groups("/api/v1/rules?rule_group[]=alerts")), ["alerts"])
        only = self.groups("/api/v1/rules?rule_name[]=SlowAlert")
        self.assertEqual([r["name"] for r in only["alerts"]["rules"]], ["SlowAlert"])
        self.assertEqual(self.groups("/api/v1/rules?file[]=/nonexistent"), {})
        ex = self.groups("/api/v1/rules?exclude_alerts=true&type=alert")
        self.assertFalse(any(r.get("alerts") for r in ex["alerts"]["rules"]))
        st, _, body = self.kiln.get("/api/v1/rules?type=foo")
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(body), {"status": "error", "errorType": "bad_data",
                                            "error": 'invalid parameter "type": not supported value "foo"'})

    def test_d_reload_with_bad_rule_file_keeps_rules(self):
        before = self.groups()
        with open(self.rules_path, "w") as f:
            f.write(RULES_BAD)
        st, _, body = self.kiln.post("/-/reload")
        self.assertNotEqual(st, 200)
        self.assertIn(b"rules.yml:", body)
        m = self.kiln.metrics()
        self.assertEqual(m["kiln_config_last_reload_successful"], 0)
        after = self.groups()
        self.assertEqual(sorted(after), sorted(before))
        self.assertEqual([r["name"] for r in after["rec"]["rules"]], ["svc:demo_value:sum"])
        self.assertEqual(self.alerts("HighValue")[0]["state"], "firing")

    def test_e_reload_keeps_state_of_unchanged_group(self):
        before = {a["labels"]["alertname"]: a["activeAt"] for a in self.kiln.get_json("/api/v1/alerts")[1]["data"]["alerts"]}
        with open(self.rules_path, "w") as f:
            f.write(RULES_CHANGED)
        st, _, body = self.kiln.post("/-/reload")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.kiln.metrics()["kiln_config_last_reload_successful"], 1)
        g = self.groups()
        self.assertEqual([r["name"] for r in g["rec"]["rules"]], ["svc:demo_value:sum", "svc:demo_value:double"])
        after = {a["labels"]["alertname"]: a for a in self.kiln.get_json("/api/v1/alerts")[1]["data"]["alerts"]}
        self.assertEqual(after["HighValue"]["state"], "firing")
        self.assertEqual(after["HighValue"]["activeAt"], before["HighValue"])
        self.assertEqual(after["SlowAlert"]["activeAt"], before["SlowAlert"])
        got = wait_for(lambda: self.query("svc:demo_value:double"), timeout=10)
        self.assertTrue(got)
        self.assertEqual(got[0]["value"][1], "20")
        key = f'rule_group="{self.rules_path};rec"'
        self.assertEqual(self.kiln.metrics()[f"kiln_rule_group_rules{{{key}}}"], 2)

    def test_f_restart_keeps_active_at(self):
        old = self.kiln
        pending_for = time.time() - self.slow_active_at
        self.assertGreater(pending_for, 2)
        stopped = time.time()
        self.assertEqual(old.stop(), 0, old.read_log()[-3000:])
        new = Kiln(args=self.kiln_args, config=self.config, data_dir=old.data)
        self.kilns.append(new)
        type(self).kiln = new
        new.start()
        # the first evaluations after the start show a new activeAt until the restore has run
        restored = wait_for(lambda: [parse_time(a["activeAt"]) for a in self.alerts("SlowAlert")
                                     if parse_time(a["activeAt"]) < stopped], timeout=15)
        self.assertTrue(restored, f"SlowAlert not restored: {self.alerts('SlowAlert')}\n{new.read_log()[-3000:]}")
        restored = restored[0]
        down = time.time() - stopped
        print(f"\n  SlowAlert activeAt {self.slow_active_at:.3f} before the restart, {restored:.3f} after "
              f"(down {down:.1f} s)")
        # Prometheus' restore: the old activeAt (whole seconds in ALERTS_FOR_STATE) moved by the downtime,
        # not a new pending period starting now
        self.assertGreaterEqual(restored, self.slow_active_at - 1)
        self.assertLessEqual(restored, self.slow_active_at + down + 1)
        self.assertLess(restored, stopped)

    def test_g_alertmanager_down_then_up(self):
        url = f"http://127.0.0.1:{self.am_port}/api/v2/alerts"
        errors = f'kiln_notifications_errors_total{{alertmanager="{url}"}}'
        self.wait_state("HighValue", "firing")
        self.am.stop()
        e0 = self.kiln.metrics().get(errors, 0)
        self.assertTrue(wait_for(lambda: self.kiln.metrics().get(errors, 0) > e0, timeout=10),
                        "no failed sends counted while Alertmanager was down")
        type(self).start_am("am2")  # a new Alertmanager with no alerts
        got = wait_for(lambda: self.am_alerts("HighValue"), timeout=10, step=0.05)
        self.assertTrue(got, "HighValue never reached the restarted Alertmanager")
        self.assertEqual(self.kiln.get("/-/healthy")[0], 200)

    def test_h_resolved_delivered(self):
        resolved = 'alertmanager_alerts_received_total{status="resolved",version="v2"}'
        r0 = self.am_metric(resolved) or 0
        self.exporter.value = 0
        t0 = time.time()
        got = wait_for(lambda: (self.am_metric(resolved) or 0) > r0, timeout=10, step=0.05)
        self.assertTrue(got, "no resolved alert reached Alertmanager")
        print(f"\n  resolved alert in Alertmanager {time.time() - t0:.3f} s after the exporter's value dropped")
        self.assertTrue(wait_for(lambda: not self.am_alerts("HighValue"), timeout=5))
        self.assertEqual(self.alerts("HighValue"), [])


class TestBadRulesAtStart(unittest.TestCase):
    def test_bad_rule_file_stops_start(self):
        k = Kiln()
        try:
            path = os.path.join(k.tmp, "rules.yml")
            with open(path, "w") as f:
                f.write(RULES_BAD)
            with open(k.config_path, "w") as f:
                f.write(f"rule_files: ['{path}']\n")
            with self.assertRaises(RuntimeError) as cm:
                k.start()
            # the parser's error with the file, line and column, as at a reload
            self.assertIn(f"{path}:6:", str(cm.exception))
            self.assertEqual(k.proc.returncode, 1)
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
