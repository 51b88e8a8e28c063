"""http_sd_configs against a scripted HTTP SD endpoint (sdserver.Server):
targets and meta labels, relabeling to dropped targets, updates that keep
the unchanged targets' scrape loops, the last good set kept on errors,
auth, and the kiln_sd_* metrics."""
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import Kiln, wait_for  # noqa: E402
from sdserver import Exporters, Server  # noqa: E402

TOKEN = "sd-s3cret"


def config(sd_port):
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 500ms
scrape_configs:
  - job_name: httpsd
    http_sd_configs:
      - url: http://127.0.0.1:{sd_port}/targets
        refresh_interval: 1s
        authorization:
          credentials: {TOKEN}
    relabel_configs:
      - source_labels: [__meta_url, env]
        regex: '.*/targets;(prod|dev)'
        action: keep
      - source_labels: [__address__]
        target_label: addr_copy
  - job_name: badtype
    http_sd_configs:
      - url: http://127.0.0.1:{sd_port}/wrongtype
        refresh_interval: 1s
"""


class TestHTTPSD(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exp = Exporters(4)
        cls.sd = Server()
        cls.groups = []
        cls.status = 200

        def targets(req, h):
            if req["headers"].get("authorization") != f"Bearer {TOKEN}":
                return 401, {"Content-Type": "text/plain"}, "no\n"
            return cls.status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(cls.groups)
        cls.sd.route("/targets", targets)
        cls.sd.json("/wrongtype", [{"targets": [cls.exp.addrs[3]]}], ctype="text/plain")
        cls.set_groups([0, 1], [2])
        cls.kiln = Kiln(config=config(cls.sd.port))
        try:
            cls.kiln.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sd.stop()
        cls.exp.stop()
        cls.kiln.finish()

    @classmethod
    def set_groups(cls, prod, staging):
        cls.groups = [
            {"targets": [cls.exp.addrs[i] for i in prod], "labels": {"env": "prod", "team": "a"}},
            {"targets": [cls.exp.addrs[i] for i in staging], "labels": {"env": "staging"}},
        ]

    def targets(self):
        st, body = self.kiln.get_json("/api/v1/targets?scrapePool=httpsd")
        self.assertEqual(st, 200)
        return body["data"]["activeTargets"], body["data"]["droppedTargets"]

    def active_addrs(self):
        return sorted(t["discoveredLabels"]["__address__"] for t in self.targets()[0])

    def metric(self, name):
        return self.kiln.metrics().get(name, 0)

    def query(self, q):
        st, _, body = self.kiln.get("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        self.assertEqual(st, 200)
        return json.loads(body)["data"]["result"]

    def test_1_targets_meta_labels_and_dropped(self):
        ok = wait_for(lambda: self.active_addrs() == sorted(self.exp.addrs[:2]), 20)
        self.assertTrue(ok, self.kiln.read_log()[-2000:])
        active, dropped = self.targets()
        url = f"http://127.0.0.1:{self.sd.port}/targets"
        for t in active:
            d = t["discoveredLabels"]
            self.assertEqual(d["__meta_url"], url)
            self.assertEqual(d["env"], "prod")
            self.assertEqual(d["team"], "a")
            self.assertEqual(d["job"], "httpsd")
            self.assertNotIn("__meta_url", t["labels"])
            self.assertEqual(t["labels"]["addr_copy"], d["__address__"])
            self.assertEqual(t["labels"]["instance"], d["__address__"])
        self.assertEqual(len(dropped), 1)
        self.assertEqual(dropped[0]["discoveredLabels"]["__address__"], self.exp.addrs[2])
        self.assertEqual(dropped[0]["discoveredLabels"]["__meta_url"], url)
        self.assertEqual(dropped[0]["discoveredLabels"]["env"], "staging")
        # the refresh carries the interval header, as Prometheus' does
        got = self.sd.got("/targets")
        self.assertEqual(got[-1]["headers"].get("x-prometheus-refresh-interval-seconds"), "1")
        self.assertEqual(got[-1]["headers"].get("accept"), "application/json")
        # the discovered targets are scraped with their labels
        ok = wait_for(lambda: len(self.query('up{job="httpsd",env="prod",team="a"} == 1')) == 2, 20)
        self.assertTrue(ok, self.query("up"))
        self.assertEqual(self.metric('kiln_sd_discovered_targets{config="httpsd",name="scrape"}'), 3)
        self.assertGreaterEqual(self.metric('kiln_sd_refreshes_total{mechanism="http"}'), 1)

    def test_2_update_keeps_unchanged_targets(self):
        wait_for(lambda: self.active_addrs() == sorted(self.exp.addrs[:2]), 20)
        wait_for(lambda: all(t["health"] == "up" for t in self.targets()[0]), 10)
        before = {t["discoveredLabels"]["__address__"]: t["lastScrape"] for t in self.targets()[0]}
        kept = self.exp.addrs[0]
        self.assertNotEqual(before[kept], "0001-01-01T00:00:00Z")
        # target 1 goes, target 3 comes
        type(self).set_groups([0, 3], [2])
        seen_reset = []

        def moved():
            ts = {t["discoveredLabels"]["__address__"]: t for t in self.targets()[0]}
            if kept in ts and ts[kept]["lastScrape"] == "0001-01-01T00:00:00Z":
                seen_reset.append(True)
            return sorted(ts) == sorted([self.exp.addrs[0], self.exp.addrs[3]])
        self.assertTrue(wait_for(moved, 20, step=0.02), self.targets())
        # the unchanged target kept its loop: never a fresh target with no scrape yet
        self.assertEqual(seen_reset, [])
        # the removed target's series went stale
        ok = wait_for(lambda: not self.query(f'up{{instance="{self.exp.addrs[1]}"}}'), 20)
        self.assertTrue(ok)
        type(self).set_groups([0, 1], [2])
        wait_for(lambda: self.active_addrs() == sorted(self.exp.addrs[:2]), 20)

    def test_3_errors_keep_the_last_good_set(self):
        wait_for(lambda: self.active_addrs() == sorted(self.exp.addrs[:2]), 20)
        fails = self.metric("kiln_sd_http_failures_total")
        type(self).status = 500
        try:
            self.assertTrue(wait_for(lambda: self.metric("kiln_sd_http_failures_total") >= fails + 2, 20))
            self.assertEqual(self.active_addrs(), sorted(self.exp.addrs[:2]))
            self.assertGreaterEqual(self.metric('kiln_sd_refresh_failures_total{mechanism="http"}'), 2)
        finally:
            type(self).status = 200
        self.assertIn("server returned HTTP status 500", self.kiln.read_log())

    def test_4_wrong_content_type_is_a_failure(self):
        ok = wait_for(lambda: "unsupported content type" in self.kiln.read_log(), 20)
        self.assertTrue(ok)
        st, body = self.kiln.get_json("/api/v1/targets?scrapePool=badtype")
        self.assertEqual(body["data"]["activeTargets"], [])


class TestHTTPSDReload(unittest.TestCase):
    """A reload that changes only relabeling keeps the discovery and its targets."""

    def test_reload_keeps_discovery(self):
        exp = Exporters(2)
        sd = Server()
        sd.json("/t", [{"targets": exp.addrs, "labels": {"a": "1"}}])
        cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 500ms}}
scrape_configs:
  - job_name: j
    http_sd_configs: [{{url: "http://127.0.0.1:{sd.port}/t", refresh_interval: 1h}}]
    relabel_configs: [{{target_label: r, replacement: "%s"}}]
"""
        kiln = Kiln(args=("--web.enable-lifecycle",), config=cfg % "one")
        try:
            kiln.start()

            def labels():
                st, b = kiln.get_json("/api/v1/targets")
                return sorted(t["labels"].get("r", "") for t in b["data"]["activeTargets"])
            self.assertTrue(wait_for(lambda: labels() == ["one", "one"], 20), kiln.read_log()[-2000:])
            with open(kiln.config_path, "w") as f:
                f.write(cfg % "two")
            st, _, _ = kiln.post("/-/reload")
            self.assertEqual(st, 200)
            # refresh_interval is an hour: the targets can only come from the kept groups
            self.assertTrue(wait_for(lambda: labels() == ["two", "two"], 20))
            self.assertEqual(len(sd.got("/t")), 1)
        finally:
            sd.stop()
            exp.stop()
            code = kiln.stop()
            log = kiln.read_log()
            kiln.cleanup()
        self.assertEqual(code, 0, log[-3000:])


if __name__ == "__main__":
    unittest.main()
