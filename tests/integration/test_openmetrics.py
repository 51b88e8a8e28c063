"""OpenMetrics 1.0 strictness, against real scrapes.

Every case of tests/openmetrics/{good,bad}/*.om (one good and one bad for each
rule of the spec's ABNF and each MUST sentence) is served by an HTTP server as
application/openmetrics-text and scraped by kiln as a target of its own (its
path in __metrics_path__, its name in a `case` label):
  - a good case must be up, and the same series with the same values as
    Debian's Prometheus 2.42 scraping the same file (through /api/v1/series
    and /api/v1/query);
  - a bad case must be down, its lastError the message of the .err file (the
    line and the rule).
The good cases are scraped with honor_timestamps: false, so that the cases'
fixed timestamps (1970, 2018) do not meet the head's bounds; a job of its
own honors them for timestamp_huge.om, whose samples with timestamps beyond
int64 milliseconds are dropped and counted (out of bounds) by both, the
scrape kept.
"""
import http.server
import json
import os
import socketserver
import threading
import time
import unittest
import urllib.parse

from kilntest import Kiln, Prometheus, ROOT, free_port, http_get, wait_for

CASES = os.path.join(ROOT, "tests", "openmetrics")
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def case_names(kind):
    return sorted(f[:-3] for f in os.listdir(os.path.join(CASES, kind)) if f.endswith(".om"))


class Handler(http.server.BaseHTTPRequestHandler):
    def body(self):
        """The case file the path names (/good/<case>), or None."""
        path = os.path.normpath(urllib.parse.urlparse(self.path).path).lstrip("/")
        full = os.path.join(CASES, path + ".om")
        if not path.startswith(("good/", "bad/")) or not os.path.isfile(full):
            return None
        with open(full, "rb") as f:
            return f.read()

    def do_GET(self):
        body = self.body()
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", OM_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def config(port):
    def groups(kind):
        return "".join(f"""
      - targets: ['127.0.0.1:{port}']
        labels: {{__metrics_path__: '/{kind}/{name}', case: '{name}'}}""" for name in case_names(kind))
    return f"""
global:
  scrape_interval: 3s
  scrape_timeout: 3s
scrape_configs:
  - job_name: om_good
    honor_timestamps: false
    static_configs:{groups("good")}
  - job_name: om_bad
    static_configs:{groups("bad")}
  - job_name: om_ts
    static_configs:
      - targets: ['127.0.0.1:{port}']
        labels: {{__metrics_path__: '/good/timestamp_huge', case: 'timestamp_huge'}}
"""


def start_peers(cls, cfg, args=()):
    """kiln and Prometheus with the same configuration and flags, as cls.kiln
    and cls.prom (cls.srv is shut down if either fails to start)."""
    cls.kiln = Kiln(config=cfg, args=list(args))
    cls.prom = Prometheus(cfg, args=list(args))
    try:
        cls.kiln.start()
        cls.prom.__enter__()
    except Exception:
        cls.kiln.cleanup()
        cls.srv.shutdown()
        raise


def targets_of(get_json):
    st, body = get_json("/api/v1/targets")
    assert st == 200, st
    return body["data"]["activeTargets"]


class OpenMetricsTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        start_peers(cls, config(cls.srv.server_address[1]))
        cls.ngood, cls.nbad = len(case_names("good")), len(case_names("bad"))

        def all_scraped(tgts, n):
            return len(tgts) == n and all(t["health"] != "unknown" for t in tgts)
        total = cls.ngood + cls.nbad + 1
        ok = wait_for(lambda: all_scraped(targets_of(cls.kiln.get_json), total), timeout=60)
        ok = ok and wait_for(lambda: all_scraped(targets_of(lambda p: (200, {"data": cls.prom.query(p)})), total),
                             timeout=60)
        if not ok:
            cls.tearDownClass()
            raise AssertionError("targets were not all scraped in 60 s")
        time.sleep(3.5)  # another scrape each

    @classmethod
    def tearDownClass(cls):
        cls.prom.__exit__()
        code = cls.kiln.stop()
        log = cls.kiln.read_log()
        cls.kiln.cleanup()
        cls.srv.shutdown()
        if code != 0:
            raise AssertionError(f"kiln exited with {code}:\n{log[-3000:]}")

    def kiln_targets(self, job):
        return {t["labels"]["case"]: t for t in targets_of(self.kiln.get_json) if t["labels"]["job"] == job}

    def test_good_cases_are_up(self):
        tg = self.kiln_targets("om_good")
        self.assertEqual(len(tg), self.ngood)
        down = {c: t["lastError"] for c, t in tg.items() if t["health"] != "up"}
        self.assertEqual(down, {})

    def test_bad_cases_are_down_with_the_rule(self):
        tg = self.kiln_targets("om_bad")
        self.assertEqual(len(tg), self.nbad)
        wrong = {}
        for name, t in tg.items():
            with open(os.path.join(CASES, "bad", name + ".err")) as f:
                want = f.read().strip()
            if t["health"] != "down" or want not in t["lastError"]:
                wrong[name] = (t["health"], t["lastError"], want)
        self.assertEqual(wrong, {})

    def test_spec_where_prometheus_is_lenient(self):
        """Names beginning with "_" (reserved) and a bare '"' in HELP break
        the specification, which kiln follows (docs/compatibility.md):
        Prometheus 2.42 accepts the same bodies."""
        cases = ["metric_name_reserved", "label_name_reserved", "help_bare_quote"]
        prom = {t["labels"]["case"]: t["health"] for t in targets_of(lambda p: (200, {"data": self.prom.query(p)}))
                if t["labels"]["job"] == "om_bad"}
        kiln = self.kiln_targets("om_bad")
        self.assertEqual({c: (kiln[c]["health"], prom[c]) for c in cases}, {c: ("down", "up") for c in cases})

    def series(self, q, case):
        """{frozenset(labels): value} of `{case="..."}` (report series but
        scrape_duration_seconds, whose value is the scrape's own)."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": f'{{case="{case}",__name__!="scrape_duration_seconds"}}'})
        out = {}
        for r in q(path)["result"]:
            out[frozenset(r["metric"].items())] = r["value"][1]
        return out

    def series_api(self, q, case):
        path = "/api/v1/series?" + urllib.parse.urlencode({"match[]": f'{{case="{case}"}}', "start": "0"})
        return sorted(json.dumps(s, sort_keys=True) for s in q(path))

    def kiln_data(self, path):
        st, body = self.kiln.get_json(path)
        self.assertEqual(st, 200, body)
        return body["data"]

    def test_good_cases_same_series_as_prometheus(self):
        diffs = {}
        for name in case_names("good"):
            k, p = self.series(self.kiln_data, name), self.series(self.prom.query, name)
            ks, ps = self.series_api(self.kiln_data, name), self.series_api(self.prom.query, name)
            if k != p or ks != ps:
                diffs[name] = {"query kiln-only": [dict(x) for x in k.keys() - p.keys()],
                               "query prometheus-only": [dict(x) for x in p.keys() - k.keys()],
                               "values": {str(dict(x)): (k[x], p[x]) for x in k.keys() & p.keys() if k[x] != p[x]},
                               "series kiln-only": sorted(set(ks) - set(ps)),
                               "series prometheus-only": sorted(set(ps) - set(ks))}
            self.assertGreaterEqual(len(k), 4, name)  # the report series at least
        self.assertEqual(diffs, {})

    def test_nul_in_label_value(self):
        """A label value holding a NUL (valid OpenMetrics) is kept whole, as
        Prometheus keeps it (kiln holds the NUL as C0 80 inside, util/strnul.c):
        the same value over the query API (\\u0000 in the JSON), and PromQL
        matchers naming it (\\x00, \\u0000, \\000) or a regex over it find it."""
        for data in (self.kiln_data, self.prom.query):
            k = self.series(data, "label_nul")
            self.assertEqual([dict(x)["b"] for x in k if dict(x).get("__name__") == "a"], ["x \x00 y"])
            for m in ('b="x \\x00 y"', 'b="x \\u0000 y"', 'b="x \\000 y"', 'b=~"x.*"', 'b=~"x \\x00 y"',
                      'b!="x "', 'b=~".*\\x00.*"'):
                q = "/api/v1/query?" + urllib.parse.urlencode({"query": f'a{{case="label_nul",{m}}}'})
                got = [r["metric"]["b"] for r in data(q)["result"]]
                self.assertEqual(got, ["x \x00 y"], (data, m))
        for get in (lambda p: self.kiln.get(p)[2], lambda p: http_get(self.prom.url + p)[1]):
            raw = get("/api/v1/label/b/values?" + urllib.parse.urlencode({"match[]": '{case="label_nul"}'}))
            self.assertEqual(json.loads(raw)["data"], ["x \x00 y"])
            self.assertIn(b'"x \\u0000 y"', raw)  # as Go's encoder writes it

    def test_huge_timestamp_drops_the_sample_not_the_scrape(self):
        t = self.kiln_targets("om_ts")["timestamp_huge"]
        self.assertEqual(t["health"], "up", t["lastError"])
        q = 'count by (__name__) ({job="om_ts",__name__=~"a|b|c"})'
        for data in (self.kiln_data, self.prom.query):
            got = data("/api/v1/query?" + urllib.parse.urlencode({"query": q}))["result"]
            self.assertEqual([r["metric"]["__name__"] for r in got], ["a"])
        oob = self.kiln.metrics()["kiln_target_scrapes_sample_out_of_bounds_total"]
        self.assertGreaterEqual(oob, 2)
        # Prometheus counts the same drops, in its own /metrics
        st, body = http_get(self.prom.url + "/metrics")
        self.assertEqual(st, 200)
        line = [l for l in body.decode().splitlines()
                if l.startswith("prometheus_target_scrapes_sample_out_of_bounds_total ")]
        self.assertEqual(len(line), 1)
        self.assertGreaterEqual(float(line[0].split()[1]), 2)


if __name__ == "__main__":
    unittest.main()


EXEMPLAR_CASES = ["histogram_exemplars", "counter_exemplar", "exemplar_after_timestamp", "gaugehistogram_exemplar",
                  "exemplar_128_runes", "exemplar_empty_labels"]


class ExemplarStorageTest(unittest.TestCase):
    """--enable-feature=exemplar-storage: the exemplars of the good cases,
    scraped by kiln and by Prometheus 2.42, answered by query_exemplars the
    same (an exemplar without a timestamp takes its scrape's time, which
    differs between the two: only its presence is compared)."""
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        port = cls.srv.server_address[1]
        groups = "".join(f"""
      - targets: ['127.0.0.1:{port}']
        labels: {{__metrics_path__: '/good/{name}', case: '{name}'}}""" for name in EXEMPLAR_CASES)
        cfg = f"""
global:
  scrape_interval: 1s
storage:
  exemplars:
    max_exemplars: 1000
scrape_configs:
  - job_name: om_ex
    honor_timestamps: false
    static_configs:{groups}
"""
        start_peers(cls, cfg, ["--enable-feature=exemplar-storage"])
        cls.path = "/api/v1/query_exemplars?" + urllib.parse.urlencode(
            {"query": '{job="om_ex"}', "start": "0", "end": str(int(time.time()) + 3600)})

        def have_all(get):
            try:
                return len(get()) == 8
            except (OSError, KeyError):
                return False
        ok = wait_for(lambda: have_all(lambda: cls.kiln_ex()), timeout=30) and \
            wait_for(lambda: have_all(lambda: cls.prom.query(cls.path)), timeout=30)
        if not ok:
            cls.tearDownClass()
            raise AssertionError("exemplars did not arrive in 30 s")
        time.sleep(2.5)  # more scrapes: the same exemplars again must not repeat

    @classmethod
    def kiln_ex(cls):
        st, body = cls.kiln.get_json(cls.path)
        assert st == 200, body
        return body["data"]

    @classmethod
    def tearDownClass(cls):
        cls.prom.__exit__()
        code = cls.kiln.stop()
        cls.kiln.cleanup()
        cls.srv.shutdown()
        if code != 0:
            raise AssertionError(f"kiln exited with {code}")

    @staticmethod
    def canonical(data, dated):
        out = []
        for s in data:
            exs = []
            for e in s["exemplars"]:
                key = json.dumps(e["labels"], sort_keys=True)
                exs.append((key, e["value"], e["timestamp"] if (key, e["value"]) in dated else None))
            out.append((json.dumps(s["seriesLabels"], sort_keys=True), exs))
        return sorted(out)

    def test_same_exemplars_as_prometheus(self):
        k, p = self.kiln_ex(), self.prom.query(self.path)
        # the exemplars written with a timestamp: (labels, value)
        dated = {('{"trace_id": "oHg5SJYRHA0"}', "9.8"), ('{"trace_id": "abc"}', "1.5"), ('{"a": "b"}', "1")}
        self.assertEqual(self.canonical(k, dated), self.canonical(p, dated))
        self.assertEqual(len(k), 8)
        for s in k:
            self.assertEqual(len(s["exemplars"]), 1, s)  # scraped again and again: stored once

    def test_selectors_ranges_and_errors(self):
        def q(**params):
            return self.kiln.get_json("/api/v1/query_exemplars?" + urllib.parse.urlencode(params))
        st, body = q(query='rate(a_total{case="counter_exemplar"}[5m]) + a_bucket{case="histogram_exemplars"}',
                     start="0", end="2000000000")
        self.assertEqual(st, 200)
        self.assertEqual(sorted(s["seriesLabels"]["__name__"] for s in body["data"]), ["a_bucket"] * 3 + ["a_total"])
        # a range before the dated exemplar (2018-03-12) leaves it out
        st, body = q(query='a_total{case="counter_exemplar"}', start="0", end="1520879607")
        self.assertEqual((st, body["data"]), (200, []))
        st, body = q(query="1", start="0", end="10")
        self.assertEqual((st, body["data"]), (200, None))
        st, body = q(query="a{", start="0", end="10")
        self.assertEqual((st, body["errorType"]), (400, "bad_data"))
        st, body = q(query="a", start="10", end="0")
        self.assertEqual((st, body["errorType"]), (400, "bad_data"))

    def test_remote_write_exemplars_are_stored(self):
        import struct
        from rwproto import field, pb_label, pb_series, pb_request, snappy, varint
        now = int(time.time() * 1000)
        ex = field(1, pb_label("trace_id", "rw1")) + b"\x11" + struct.pack("<d", 2.5) + b"\x18" + varint(now)
        series = pb_series([("__name__", "rw_total"), ("job", "rw")], [(7, now)]) + field(3, ex)
        st, _, body = self.kiln.post("/api/v1/write", snappy(pb_request([series])),
                                     headers={"Content-Type": "application/x-protobuf",
                                              "Content-Encoding": "snappy"})
        self.assertEqual(st, 204, body)
        st, body = self.kiln.get_json("/api/v1/query_exemplars?" + urllib.parse.urlencode(
            {"query": "rw_total", "start": str(now / 1000 - 10), "end": str(now / 1000 + 10)}))
        self.assertEqual(st, 200)
        self.assertEqual(body["data"], [{"seriesLabels": {"__name__": "rw_total", "job": "rw"},
                                         "exemplars": [{"labels": {"trace_id": "rw1"}, "value": "2.5",
                                                        "timestamp": now / 1000}]}])


class CreatedHandler(Handler):
    """A counter, a histogram and a summary created a minute before the
    server started (set by the test class when it starts the server: the
    module is imported long before, when the whole suite is loaded), on any
    path."""
    created = 0.0

    def body(self):
        c = f"{self.created:.3f}"
        return (f"# TYPE c counter\nc_total 5\nc_created {c}\n"
                f"# TYPE h histogram\nh_bucket{{le=\"1\"}} 1\nh_created {c}\nh_bucket{{le=\"+Inf\"}} 2\n"
                f"h_count 2\nh_sum 3\n"
                f"# TYPE s summary\ns_count 1\ns_sum 2\ns_created {c}\n# TYPE g gauge\ng 1\n# EOF\n").encode()


class CreatedTimestampZeroIngestionTest(unittest.TestCase):
    """--enable-feature=created-timestamp-zero-ingestion: the _created lines
    are not series; each series of a counter, histogram or summary point gets
    a 0 at the created time before its first sample (whether _created comes
    after the sample, as usual, or before it). Without the feature _created
    is a series, as Prometheus 2.42 has it (OpenMetricsTest compares that)."""

    @classmethod
    def setUpClass(cls):
        CreatedHandler.created = time.time() - 60
        cls.srv = Server(("127.0.0.1", free_port()), CreatedHandler)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()
        cfg = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ct
    static_configs:
      - targets: ['127.0.0.1:{cls.srv.server_address[1]}']
"""
        cls.kiln = Kiln(config=cfg, args=["--enable-feature=created-timestamp-zero-ingestion"])
        try:
            cls.kiln.start()
        except Exception:
            cls.kiln.cleanup()
            cls.srv.shutdown()
            raise
        wait_for(lambda: cls.query("count(up{job=\"ct\"} == 1)"), timeout=30)
        time.sleep(2.5)

    @classmethod
    def query(cls, q):
        st, body = cls.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        assert st == 200, body
        return body["data"]["result"]

    @classmethod
    def tearDownClass(cls):
        code = cls.kiln.stop()
        cls.kiln.cleanup()
        cls.srv.shutdown()
        if code != 0:
            raise AssertionError(f"kiln exited with {code}")

    def test_zero_at_created_time(self):
        ct = round(CreatedHandler.created, 3)
        res = self.query('{job="ct",__name__=~"c_total|h_bucket|h_count|h_sum|s_count|s_sum"}[5m]')
        self.assertEqual(len(res), 7)
        for r in res:
            first, second = r["values"][0], r["values"][1]
            self.assertEqual((first[1], round(first[0], 3)), ("0", ct), r["metric"])
            self.assertNotEqual(second[1], "0", r["metric"])
            # one zero only: the later scrapes find it there already
            self.assertEqual(sum(1 for v in r["values"] if v[1] == "0"), 1, r["metric"])
        # the gauge has no created time
        self.assertNotEqual(self.query('g{job="ct"}[5m]')[0]["values"][0][1], "0")

    def test_created_is_not_a_series(self):
        self.assertEqual(self.query('{job="ct",__name__=~".*_created"}'), [])
        self.assertEqual(self.query('scrape_samples_scraped{job="ct"}')[0]["value"][1], "8")
