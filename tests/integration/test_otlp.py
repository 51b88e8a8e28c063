"""The OTLP receiver (POST /api/v1/otlp/v1/metrics) against a real sender:
the OpenTelemetry JavaScript SDK (tests/otlp/send.js, installed by `make
deps` with `npm ci --prefix tests/otlp`), run by the machine's node; what
it stored is read back through the query API."""
import json
import os
import subprocess
import unittest
import urllib.parse

from kilntest import ROOT, Kiln, KilnTestCase, require

SEND = os.path.join(ROOT, "tests", "otlp", "send.js")
PATH = "/api/v1/otlp/v1/metrics"


def send(kiln, *args):
    """Runs the SDK once; returns its export results."""
    require("node")
    if not os.path.isdir(os.path.join(ROOT, "tests", "otlp", "node_modules")):
        raise AssertionError("tests/otlp/node_modules missing: run `make deps` (npm ci --prefix tests/otlp)")
    out = subprocess.run(["node", SEND, f"http://{kiln.addr}{PATH}", *args], capture_output=True, timeout=60,
                         check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1]), out.stderr.decode()


def query(kiln, q):
    st, body = kiln.get_json("/api/v1/query?query=" + urllib.parse.quote(q))
    assert st == 200, body
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in body["data"]["result"]}


def series(**labels):
    return tuple(sorted(labels.items()))


JOB = {"job": "shop/checkout", "instance": "pod-1"}


class TestOTLPFromSDK(KilnTestCase):
    kiln_args = ("--web.enable-otlp-receiver",)
    send_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.results, cls.stderr = send(cls.kiln, *cls.send_args)

    def test_export_succeeded_everything_stored(self):
        # one export, accepted (code 0 is SUCCESS), nothing rejected
        self.assertEqual([r["code"] for r in self.results], [0], self.stderr)
        m = self.kiln.metrics()
        self.assertEqual(sum(v for k, v in m.items() if k.startswith("kiln_otlp_data_points_rejected_total")), 0)
        self.assertEqual(m['kiln_otlp_requests_total{code="200"}'], 1)
        self.assertEqual(m['kiln_otlp_data_points_received_total'], 9)

    def test_counter_total_and_attributes(self):
        got = query(self.kiln, "http_server_requests_total")
        self.assertEqual(got, {
            series(__name__="http_server_requests_total", method="GET", http_status_code="200", **JOB): 7,
            series(__name__="http_server_requests_total", method="POST", http_status_code="500", **JOB): 1,
        })

    def test_counter_unit_suffix(self):
        # unit By is "bytes", already a word of the name: not appended again
        self.assertEqual(query(self.kiln, "bytes_sent_total"), {series(__name__="bytes_sent_total", **JOB): 1024})
        self.assertEqual(query(self.kiln, "network_io_bytes_total"),
                         {series(__name__="network_io_bytes_total", direction="in", **JOB): 4096})

    def test_up_down_counter_is_a_gauge_without_ratio(self):
        self.assertEqual(query(self.kiln, "queue_depth"), {series(__name__="queue_depth", **JOB): 3})

    def test_gauges(self):
        self.assertEqual(query(self.kiln, "cpu_utilization_ratio"),
                         {series(__name__="cpu_utilization_ratio", cpu="0", **JOB): 0.25})
        self.assertEqual(query(self.kiln, "room_temperature_celsius"),
                         {series(__name__="room_temperature_celsius", **JOB): 21.5})

    def test_histogram_classic(self):
        got = query(self.kiln, '{__name__=~"request_duration_seconds.*"}')
        want = {series(__name__="request_duration_seconds_bucket", le=le, route="/cart", **JOB): v
                for le, v in (("0.1", 1), ("0.5", 2), ("1", 3), ("+Inf", 4))}
        want[series(__name__="request_duration_seconds_count", route="/cart", **JOB)] = 4
        want[series(__name__="request_duration_seconds_sum", route="/cart", **JOB)] = 3.05
        self.assertEqual(set(got), set(want))
        for k, v in want.items():
            self.assertAlmostEqual(got[k], v, places=9, msg=k)
        q = query(self.kiln, "histogram_quantile(0.5, request_duration_seconds_bucket)")
        self.assertAlmostEqual(list(q.values())[0], 0.5)

    def test_exponential_histogram_stored_native(self):
        # one native histogram series of the metric's name (the query API shows histograms once PromQL has them)
        st, j = self.kiln.get_json("/api/v1/series?match[]=" + urllib.parse.quote('{__name__=~"latency_exp.*"}'))
        self.assertEqual(st, 200, j)
        self.assertEqual(j["data"], [{"__name__": "latency_exp_milliseconds", **JOB}])
        st, j = self.kiln.get_json("/api/v1/query?query=latency_exp_milliseconds")
        self.assertEqual(st, 200, j)
        h = j["data"]["result"][0]["histogram"][1]
        self.assertEqual((h["count"], h["sum"]), ("4", "15"))  # 1, 2, 4 and 8 recorded
        self.assertEqual(sum(float(b[3]) for b in h["buckets"]), 4)

    def test_target_info(self):
        got = query(self.kiln, "target_info")
        self.assertEqual(len(got), 1, got)
        labels = dict(next(iter(got)))
        self.assertEqual(labels["job"], "shop/checkout")
        self.assertEqual(labels["instance"], "pod-1")
        self.assertEqual(labels["host_name"], "h1")
        self.assertEqual(labels["deployment_environment"], "test")
        self.assertEqual(labels["telemetry_sdk_language"], "nodejs")
        for k in ("service_name", "service_namespace", "service_instance_id"):
            self.assertNotIn(k, labels)
        self.assertEqual(list(got.values()), [1])


class TestOTLPFromSDKJSON(TestOTLPFromSDK):
    """The same export as JSON (exporter-metrics-otlp-http: application/json),
    stored the same."""
    send_args = ("json",)


def json_body(points, temporality="AGGREGATION_TEMPORALITY_CUMULATIVE"):
    return json.dumps({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}},
                                    {"key": "host.name", "value": {"stringValue": "h9"}}],
                     "droppedAttributesCount": 0, "someFutureField": {"x": [1, 2.5e3, None, True]}},
        "scopeMetrics": [{"scope": {"name": "hand", "version": "1"}, "metrics": points}],
    }]}).replace("TEMPORALITY", temporality).encode()


class TestOTLPJSONBodies(KilnTestCase):
    """Hand-written OTLP/HTTP JSON: the mapping's corners (64-bit integers
    as strings, enums by name or number, hex ids, NaN, escapes), answers as
    JSON."""
    kiln_args = ("--web.enable-otlp-receiver",)
    H = {"Content-Type": "application/json"}

    def post(self, body, headers=None):
        st, h, b = self.kiln.post(PATH, body, headers=headers or self.H)
        return st, h, b

    def test_the_mapping(self):
        t = 1_700_000_000_123_456_789
        now_ns = int(__import__("time").time()) * 10**9
        metrics = [
            {"name": "jobs.done", "unit": "{job}", "sum": {
                "aggregationTemporality": "TEMPORALITY", "isMonotonic": True,
                "dataPoints": [{"asInt": "41", "timeUnixNano": str(now_ns), "startTimeUnixNano": str(now_ns - 10**9),
                                "attributes": [{"key": "q\u00fc\"x", "value": {"intValue": "-7"}}],
                                "exemplars": [{"asDouble": 1.5, "timeUnixNano": str(now_ns),
                                               "traceId": "5b8efff798038103d269b633813fc60c",
                                               "spanId": "eee19b7ec3c1b174"}]}]}},
            {"name": "temp", "unit": "Cel", "gauge": {"dataPoints": [
                {"asDouble": 20.25, "timeUnixNano": now_ns, "attributes": [
                    {"key": "ok", "value": {"boolValue": False}},
                    {"key": "blob", "value": {"bytesValue": "aGk="}},
                    {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "a"}]}}}]}]}},
            {"name": "lat", "unit": "s", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                {"count": "3", "sum": 0.75, "bucketCounts": ["1", 1, "1"], "explicitBounds": [0.1, 0.5],
                 "timeUnixNano": str(now_ns)}]}},
            {"name": "q", "summary": {"dataPoints": [
                {"count": "2", "sum": "NaN", "timeUnixNano": str(now_ns),
                 "quantileValues": [{"quantile": 0.5, "value": 1}, {"quantile": 1, "value": "-Infinity"}]}]}},
        ]
        st, h, body = self.post(json_body(metrics))
        self.assertEqual((st, h["content-type"]), (200, "application/json"), body)
        self.assertEqual(json.loads(body), {})
        self.assertEqual(query(self.kiln, "jobs_done_total"),
                         {series(__name__="jobs_done_total", q__x="-7", job="svc"): 41})
        self.assertEqual(query(self.kiln, "temp_celsius"), {series(
            __name__="temp_celsius", ok="false", blob="aGk=", list='[1,"a"]', job="svc"): 20.25})
        self.assertEqual(query(self.kiln, "lat_seconds_bucket"), {
            series(__name__="lat_seconds_bucket", le="0.1", job="svc"): 1,
            series(__name__="lat_seconds_bucket", le="0.5", job="svc"): 2,
            series(__name__="lat_seconds_bucket", le="+Inf", job="svc"): 3,
        })
        got = query(self.kiln, '{__name__=~"q|q_sum"}')
        self.assertEqual(got[series(__name__="q", quantile="0.5", job="svc")], 1)
        self.assertEqual(got[series(__name__="q", quantile="1", job="svc")], float("-inf"))
        self.assertNotEqual(got[series(__name__="q_sum", job="svc")], got[series(__name__="q_sum", job="svc")])
        info = query(self.kiln, "target_info")
        self.assertEqual(list(info), [series(__name__="target_info", host_name="h9", job="svc")])

    def test_partial_success_is_json(self):
        metrics = [{"name": "d", "sum": {"aggregationTemporality": 1, "isMonotonic": True,
                                         "dataPoints": [{"asInt": "1", "timeUnixNano": "1"}]}}]
        st, h, body = self.post(json_body(metrics))
        self.assertEqual(st, 200)
        ps = json.loads(body)["partialSuccess"]
        self.assertEqual(ps["rejectedDataPoints"], "1")
        self.assertIn("delta", ps["errorMessage"])

    def test_bad_json_is_400_status(self):
        for body, what in ((b'{"resourceMetrics": [', "found the end"),
                           (b'{"resourceMetrics": []} x', "unexpected data after the object"),
                           (b'[]', "expected '{'"),
                           (json_body([{"name": "x", "gauge": {"dataPoints": [{"asInt": "1.5"}]}}]), "bad number"),
                           (json_body([{"name": "x", "gauge": {"dataPoints": [{"asInt": "1", "exemplars": [
                               {"traceId": "zz"}]}]}}]), 'field "trace_id": not hex'),
                           (b'{"resourceMetrics": [{"schemaUrl": "\u0000"}]}', "NUL"),
                           (b"[" * 100000, "expected '{'"),
                           (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper")):
            st, h, got = self.post(body)
            self.assertEqual((st, h["content-type"]), (400, "application/json"), body[:80])
            j = json.loads(got)
            self.assertEqual(j["code"], 3)
            self.assertIn(what, j["message"])
            self.assertIn("at byte", j["message"])

    def test_gzip_json(self):
        import gzip
        metrics = [{"name": "gz", "gauge": {"dataPoints": [{"asDouble": 2, "timeUnixNano": str(
            int(__import__("time").time()) * 10**9)}]}}]
        st, _, body = self.post(gzip.compress(json_body(metrics)),
                                headers={"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"})
        self.assertEqual(st, 200, body)
        self.assertEqual(query(self.kiln, "gz"), {series(__name__="gz", job="svc"): 2})


class TestOTLPGzipAndDelta(KilnTestCase):
    kiln_args = ("--web.enable-otlp-receiver",)

    def test_gzip_body(self):
        res, err = send(self.kiln, "gzip")
        self.assertEqual([r["code"] for r in res], [0], err)
        self.assertEqual(query(self.kiln, "bytes_sent_total"), {series(__name__="bytes_sent_total", **JOB): 1024})

    def test_delta_rejected_gauges_kept(self):
        before = self.kiln.metrics().get('kiln_otlp_data_points_rejected_total{reason="delta_temporality"}', 0)
        res, err = send(self.kiln, "delta")
        self.assertEqual([r["code"] for r in res], [0], err)
        m = self.kiln.metrics()
        # 2 + 1 + 1 counter points, 1 histogram point (the up-down counter stays cumulative in the SDK)
        self.assertEqual(m['kiln_otlp_data_points_rejected_total{reason="delta_temporality"}'] - before, 5)
        self.assertEqual(query(self.kiln, "room_temperature_celsius"),
                         {series(__name__="room_temperature_celsius", **JOB): 21.5})


class TestOTLPDeltaToCumulative(KilnTestCase):
    """--enable-feature=otlp-deltatocumulative: the SDK's delta exports are
    summed per stream and stored as counters and classic histograms."""
    kiln_args = ("--web.enable-otlp-receiver", "--enable-feature=otlp-deltatocumulative")

    def test_sdk_deltas_accumulate(self):
        for run in (1, 2):  # two SDK runs: two deltas of each stream
            res, err = send(self.kiln, "delta")
            self.assertEqual([r["code"] for r in res], [0], err)
            self.assertEqual(query(self.kiln, "http_server_requests_total"), {
                series(__name__="http_server_requests_total", method="GET", http_status_code="200", **JOB): 7 * run,
                series(__name__="http_server_requests_total", method="POST", http_status_code="500", **JOB): run,
            })
            got = query(self.kiln, 'request_duration_seconds_bucket{le=~`0.5|\\+Inf`}')
            self.assertEqual(sorted(got.values()), [2 * run, 4 * run])
            self.assertEqual(list(query(self.kiln, "request_duration_seconds_count").values()), [4 * run])
            self.assertAlmostEqual(list(query(self.kiln, "request_duration_seconds_sum").values())[0], 3.05 * run)
        m = self.kiln.metrics()
        self.assertEqual(m.get('kiln_otlp_data_points_rejected_total{reason="delta_temporality"}', 0), 0)
        log = self.kiln.read_log()
        self.assertIn("Converting delta OTLP metrics to cumulative", log)

    def test_out_of_order_and_new_bounds(self):
        now = int(__import__("time").time()) * 10**9

        def delta(t, v, bounds=(1.0,), counts=(1, 0)):
            return json_body([
                {"name": "d.c", "sum": {"aggregationTemporality": 1, "isMonotonic": True,
                                        "dataPoints": [{"asInt": str(v), "timeUnixNano": str(t)}]}},
                {"name": "d.h", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                    {"count": str(sum(counts)), "sum": 1, "bucketCounts": [str(c) for c in counts],
                     "explicitBounds": list(bounds), "timeUnixNano": str(t)}]}}])
        H = {"Content-Type": "application/json"}
        for t, v in ((now - 3 * 10**9, 2), (now - 2 * 10**9, 3)):
            st, _, body = self.kiln.post(PATH, delta(t, v), headers=H)
            self.assertEqual((st, json.loads(body)), (200, {}))
        self.assertEqual(query(self.kiln, "d_c_total"), {series(__name__="d_c_total", job="svc"): 5})
        st, _, body = self.kiln.post(PATH, delta(now - 3 * 10**9, 100), headers=H)  # older: dropped
        ps = json.loads(body)["partialSuccess"]
        self.assertEqual(ps["rejectedDataPoints"], "2")
        self.assertIn("out of order delta", ps["errorMessage"])
        self.assertEqual(query(self.kiln, "d_c_total"), {series(__name__="d_c_total", job="svc"): 5})
        self.assertEqual(query(self.kiln, 'd_h_bucket{le="1"}'), {series(__name__="d_h_bucket", le="1", job="svc"): 2})
        # other bounds: the stream starts again from this delta
        st, _, body = self.kiln.post(PATH, delta(now - 10**9, 1, bounds=(2.0,), counts=(3, 0)), headers=H)
        self.assertEqual((st, json.loads(body)), (200, {}))
        self.assertEqual(query(self.kiln, 'd_h_bucket{le="2"}'), {series(__name__="d_h_bucket", le="2", job="svc"): 3})
        self.assertEqual(query(self.kiln, "d_c_total"), {series(__name__="d_c_total", job="svc"): 6})


class TestOTLPStartTimestamps(KilnTestCase):
    """--enable-feature=created-timestamp-zero-ingestion: a 0 sample at a
    cumulative counter's, histogram's or summary's start time."""
    kiln_args = ("--web.enable-otlp-receiver", "--enable-feature=created-timestamp-zero-ingestion")

    def samples(self, q, t):
        st, j = self.kiln.get_json("/api/v1/query?query=" + urllib.parse.quote(q + "[5m]") + f"&time={t}")
        self.assertEqual(st, 200, j)
        return {r["metric"]["__name__"]: [(float(ts), float(v)) for ts, v in r["values"]] for r in j["data"]["result"]}

    def test_zero_at_the_start(self):
        now = int(__import__("time").time())
        start, t1, t2 = (now - 60) * 10**9, (now - 30) * 10**9, (now - 15) * 10**9

        def body(t, v):
            return json_body([
                {"name": "c", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                    {"asInt": str(v), "startTimeUnixNano": str(start), "timeUnixNano": str(t)}]}},
                {"name": "g", "gauge": {"dataPoints": [
                    {"asInt": str(v), "startTimeUnixNano": str(start), "timeUnixNano": str(t)}]}},
                {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                    {"count": str(v), "sum": v, "bucketCounts": [str(v)], "explicitBounds": [],
                     "startTimeUnixNano": str(start), "timeUnixNano": str(t)}]}}])
        for t, v in ((t1, 5), (t2, 8)):  # the second's zero is refused (older), silently
            st, _, b = self.kiln.post(PATH, body(t, v), headers={"Content-Type": "application/json"})
            self.assertEqual((st, json.loads(b)), (200, {}))
        s0, s1, s2 = start / 1e9, t1 / 1e9, t2 / 1e9
        self.assertEqual(self.samples('{__name__=~"c_total|g"}', now), {
            "c_total": [(s0, 0), (s1, 5), (s2, 8)], "g": [(s1, 5), (s2, 8)]})
        got = self.samples('{__name__=~"h_.*"}', now)
        self.assertEqual(got["h_count"], [(s0, 0), (s1, 5), (s2, 8)])
        self.assertEqual(got["h_sum"], [(s0, 0), (s1, 5), (s2, 8)])
        self.assertEqual(got["h_bucket"], [(s0, 0), (s1, 5), (s2, 8)])


class TestOTLPNativeCustomBuckets(KilnTestCase):
    """otlp.convert_histograms_to_nhcb: explicit-bucket histograms stored as
    native histograms with custom buckets, not as classic series."""
    kiln_args = ("--web.enable-otlp-receiver",)
    kiln_config = "otlp:\n  convert_histograms_to_nhcb: true\n"

    def test_histogram_is_one_native_series(self):
        res, err = send(self.kiln)
        self.assertEqual([r["code"] for r in res], [0], err)
        st, j = self.kiln.get_json("/api/v1/series?match[]=" + urllib.parse.quote('{__name__=~"request_duration.*"}'))
        self.assertEqual(st, 200, j)
        self.assertEqual(j["data"], [{"__name__": "request_duration_seconds", "route": "/cart", **JOB}])
        st, j = self.kiln.get_json("/api/v1/query?query=request_duration_seconds")
        h = j["data"]["result"][0]["histogram"][1]
        self.assertEqual(h["count"], "4")
        self.assertAlmostEqual(float(h["sum"]), 3.05)
        # custom buckets: (-Inf, 0.1], (0.1, 0.5], (0.5, 1], (1, +Inf] one each
        self.assertEqual([(b[1], b[2], b[3]) for b in h["buckets"]],
                         [("-Inf", "0.1", "1"), ("0.1", "0.5", "1"), ("0.5", "1", "1"), ("1", "+Inf", "1")])
        q = query(self.kiln, "histogram_quantile(0.5, request_duration_seconds)")
        self.assertAlmostEqual(list(q.values())[0], 0.5)
        self.assertEqual(query(self.kiln, "bytes_sent_total"), {series(__name__="bytes_sent_total", **JOB): 1024})


class TestOTLPConfig(KilnTestCase):
    """The otlp section: promotion, scope labels, identifying attributes on
    target_info, then a reload to another translation strategy."""
    kiln_args = ("--web.enable-otlp-receiver", "--web.enable-lifecycle")
    kiln_config = ("otlp:\n"
                   "  promote_resource_attributes: [host.name, ' deployment.environment ']\n"
                   "  keep_identifying_resource_attributes: true\n"
                   "  promote_scope_metadata: true\n")

    def test_promotion_scope_then_reload(self):
        res, err = send(self.kiln)
        self.assertEqual([r["code"] for r in res], [0], err)
        self.assertEqual(query(self.kiln, "bytes_sent_total"), {
            series(__name__="bytes_sent_total", host_name="h1", deployment_environment="test",
                   otel_scope_name="kiln-test", otel_scope_version="1.0.0", **JOB): 1024})
        info = dict(next(iter(query(self.kiln, "target_info"))))
        self.assertEqual((info["service_name"], info["service_namespace"], info["service_instance_id"]),
                         ("checkout", "shop", "pod-1"))
        self.assertNotIn("otel_scope_name", info)
        st, doc = self.kiln.get_json("/api/v1/status/config")
        self.assertIn("  - deployment.environment\n", doc["data"]["yaml"])

        with open(self.kiln.config_path, "w") as f:
            f.write("otlp:\n  translation_strategy: UnderscoreEscapingWithoutSuffixes\n")
        st, _, body = self.kiln.post("/-/reload")
        self.assertEqual(st, 200, body)
        res, err = send(self.kiln)
        self.assertEqual([r["code"] for r in res], [0], err)
        self.assertEqual(query(self.kiln, "bytes_sent"), {series(__name__="bytes_sent", **JOB): 1024})
        self.assertEqual(query(self.kiln, 'request_duration_bucket{le="+Inf"}'),
                         {series(__name__="request_duration_bucket", le="+Inf", route="/cart", **JOB): 4})

    def test_bad_otlp_sections_refused(self):
        for cfg, msg in (
                ("otlp:\n  promote_resource_attributes: [a, ' a']\n",
                 'duplicated promoted OTel resource attribute "a"'),
                ("otlp:\n  translation_strategy: NoTranslation\n",
                 'OTLP translation strategy "NoTranslation" is not allowed when UTF8 is disabled'),
                ("otlp:\n  ignore_resource_attributes: [a]\n",
                 "'ignore_resource_attributes' cannot be configured unless"),
        ):
            with open(self.kiln.config_path) as f:
                old = f.read()
            with open(self.kiln.config_path, "w") as f:
                f.write(cfg)
            try:
                st, _, body = self.kiln.post("/-/reload")
            finally:
                with open(self.kiln.config_path, "w") as f:
                    f.write(old)
            self.assertEqual(st, 500, body)
            self.assertIn(msg, body.decode())


class TestOTLPErrors(KilnTestCase):
    kiln_args = ("--web.enable-otlp-receiver",)

    def test_bad_protobuf_is_400_status(self):
        st, h, body = self.kiln.post(PATH, b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
        self.assertEqual(st, 400)
        self.assertEqual(h["content-type"], "application/x-protobuf")
        # google.rpc.Status: field 1 (code) = 3 INVALID_ARGUMENT, then the message
        self.assertEqual(body[:2], b"\x08\x03")
        self.assertIn(b"ExportMetricsServiceRequest", body)

    def test_other_content_type_is_415(self):
        st, _, body = self.kiln.post(PATH, b"x", headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        self.assertIn(b"application/x-protobuf or application/json", body)

    def test_bad_gzip_is_400(self):
        st, _, _ = self.kiln.post(PATH, b"not gzip", headers={"Content-Type": "application/x-protobuf",
                                                                "Content-Encoding": "gzip"})
        self.assertEqual(st, 400)

    def test_empty_request_is_200(self):
        st, h, body = self.kiln.post(PATH, b"", headers={"Content-Type": "application/x-protobuf"})
        self.assertEqual((st, body), (200, b""))


class TestOTLPDisabled(unittest.TestCase):
    def test_404_without_flag(self):
        k = Kiln()
        try:
            k.start()
            st, _, body = k.post(PATH, b"", headers={"Content-Type": "application/x-protobuf"})
            self.assertEqual(st, 404)
            self.assertIn(b"--web.enable-otlp-receiver", body)
        finally:
            k.stop()
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
