"""kiln's remote-write sender (`remote_write` in the configuration) against
real peers: Debian's Prometheus 2.42 as the receiver
(--web.enable-remote-write-receiver), and small Python receivers that
answer 500 then 200, 429 with Retry-After, 400, or hang.

kiln scrapes itself every second; the receiver must hold every sample kiln
holds (compared raw, `{job="kiln"}[..]` through both query APIs), also after
the receiver was down for a while (the WAL holds the backlog) and after a
kill -9 of kiln in the middle of sending (it resumes from its progress file).
"""
import glob
import http.server
import json
import os
import shutil
import signal
import socketserver
import tempfile
import threading
import time
import unittest
import urllib.parse

from kilntest import Kiln, Process, free_port, http_get, require, wait_for


def raw_samples(base, t):
    """{labels: [(t, v)...]} of every series of job kiln over the minute before t."""
    q = urllib.parse.urlencode({"query": '{job="kiln"}[1m]', "time": f"{t:.3f}"})
    st, body = http_get(f"{base}/api/v1/query?{q}")
    assert st == 200, (st, body[:200])
    return {json.dumps(r["metric"], sort_keys=True): [tuple(v) for v in r["values"]]
            for r in json.loads(body)["data"]["result"]}


def metric(k, name, url):
    for key, v in k.metrics().items():
        if key.startswith(f"kiln_remote_storage_{name}{{") and f'url="{url}"' in key:
            return v
    return None


class Receiver:
    """Debian's Prometheus as a remote-write receiver on a fixed port and data
    dir, so it can be stopped and started again with what it received."""

    def __init__(self):
        require("prometheus")
        self.dir = tempfile.mkdtemp(prefix="kiln-test-rwrecv-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global: {}\n")
        self.proc = None

    def start(self):
        self.proc = Process(["prometheus", f"--config.file={self.dir}/prometheus.yml",
                             f"--storage.tsdb.path={self.dir}/data", f"--web.listen-address=127.0.0.1:{self.port}",
                             "--web.enable-remote-write-receiver"], os.path.join(self.dir, "prometheus.log"))
        assert wait_for(lambda: http_get(self.url + "/-/ready", timeout=2)[0] == 200, timeout=30)

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestSendToPrometheus(unittest.TestCase):
    def setUp(self):
        self.recv = Receiver()
        self.addCleanup(self.recv.cleanup)
        self.recv.start()
        self.kiln = Kiln(config=None)
        self.addCleanup(self.kiln.cleanup)
        with open(self.kiln.config_path, "w") as f:
            f.write(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["{self.kiln.addr}"]}}]
remote_write:
  - url: {self.recv.url}/api/v1/write
    name: prom
    queue_config: {{batch_send_deadline: 500ms, capacity: 500, max_samples_per_send: 200, max_backoff: 1s}}
""")
        self.url = f"{self.recv.url}/api/v1/write"

    def caught_up(self, t):
        """Waits until kiln has sent everything up to t (the receiver holds it)."""
        return wait_for(lambda: (metric(self.kiln, "queue_highest_sent_timestamp_seconds", self.url) or 0) >= t,
                        timeout=30, step=0.2)

    def assert_same(self, t):
        mine = raw_samples(f"http://{self.kiln.addr}", t)
        theirs = raw_samples(self.recv.url, t)
        self.assertGreater(len(mine), 50)
        self.assertEqual(sorted(mine), sorted(theirs))
        for k in mine:
            self.assertEqual(mine[k], theirs[k], k)
        return sum(len(v) for v in mine.values())

    def test_receiver_holds_every_sample_through_an_outage_and_a_kill(self):
        self.kiln.start()
        time.sleep(4)
        t1 = time.time() - 1
        self.assertTrue(self.caught_up(t1))
        n1 = self.assert_same(t1)

        # the receiver stopped: the backlog stays in the WAL, the queue stays within its capacity
        self.recv.stop()
        pend = []
        for _ in range(12):
            time.sleep(0.5)
            pend.append(metric(self.kiln, "samples_pending", self.url))
        self.assertLessEqual(max(pend), 500 * 50)  # capacity x max_shards
        self.assertGreater(metric(self.kiln, "samples_retried_total", self.url), 0)
        self.recv.start()
        time.sleep(2)

        # kill -9 in the middle of sending, then a restart resumes from the progress file
        self.kiln.stop(sig=signal.SIGKILL)
        progress = glob.glob(os.path.join(self.kiln.data, "remote", "*", "progress"))
        self.assertEqual(len(progress), 1)
        with open(progress[0]) as f:
            seg, off = f.read().split()
        self.assertGreater(int(off) + int(seg), 0)
        self.kiln.start()
        time.sleep(3)
        t2 = time.time() - 1
        self.assertTrue(self.caught_up(t2), self.kiln.read_log()[-2000:])
        n2 = self.assert_same(t2)
        self.assertGreater(n2, n1)
        self.assertEqual(metric(self.kiln, "samples_failed_total", self.url), 0)
        self.assertIn('msg="remote write: starting"', self.kiln.read_log())


class FakeReceiver(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Answers POST /<mode>: 'flaky' 500 twice then 200, 'slow429' 429 with
    Retry-After: 1 once then 200, 'bad' always 400, 'hang' sleeps past kiln's
    remote_timeout once then 200.  Records (time, path, status, headers)."""
    daemon_threads = True

    def __init__(self):
        self.log = []
        self.counts = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeHandler)


class FakeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv = self.server
        mode = self.path.strip("/")
        with srv.lock:
            n = srv.counts[mode] = srv.counts.get(mode, 0) + 1
        status, extra = 200, {}
        if mode == "flaky" and n <= 2:
            status = 500
        elif mode == "slow429" and n == 1:
            status, extra = 429, {"Retry-After": "1"}
        elif mode == "bad":
            status = 400
        elif mode == "hang" and n == 1:
            time.sleep(3)
        with srv.lock:
            srv.log.append((time.time(), mode, status, dict(self.headers), len(body)))
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass


class TestFailureModes(unittest.TestCase):
    def start_receiver(self):
        """A FakeReceiver on its own thread, and a kiln (not started) to point at it."""
        srv = FakeReceiver()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        k = Kiln(config=None)
        self.addCleanup(k.cleanup)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}", k

    def test_500_429_400_and_timeout(self):
        srv, base, k = self.start_receiver()
        q = "queue_config: {batch_send_deadline: 300ms, min_backoff: 100ms, max_backoff: 500ms, retry_on_http_429: true}"
        with open(k.config_path, "w") as f:
            f.write(f"""
global:
  scrape_interval: 1s
  external_labels: {{site: edge}}
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["{k.addr}"]}}]
remote_write:
  - {{url: {base}/flaky, {q}, headers: {{X-Scope-OrgID: team1}}, basic_auth: {{username: u, password: p}}}}
  - {{url: {base}/slow429, {q}}}
  - {{url: {base}/bad, {q}}}
  - {{url: {base}/hang, remote_timeout: 1s, {q}}}
""")
        k.start()
        m = lambda mode, name: metric(k, name, f"{base}/{mode}") or 0
        self.assertTrue(wait_for(lambda: all(m(x, "samples_total") > 0 for x in ("flaky", "slow429", "hang"))
                                 and m("bad", "samples_failed_total") > 0, timeout=30, step=0.2),
                        k.read_log()[-3000:])
        time.sleep(1.5)
        with srv.lock:
            log = list(srv.log)
        # 500 twice, then accepted: retried, nothing failed
        self.assertGreater(m("flaky", "samples_retried_total"), 0)
        self.assertEqual(m("flaky", "samples_failed_total"), 0)
        flaky = [e for e in log if e[1] == "flaky"]
        self.assertEqual([e[2] for e in flaky[:3]], [500, 500, 200])
        h = flaky[0][3]
        self.assertEqual(h.get("Content-Encoding"), "snappy")
        self.assertEqual(h.get("Content-Type"), "application/x-protobuf")
        self.assertEqual(h.get("X-Prometheus-Remote-Write-Version"), "0.1.0")
        self.assertTrue(h.get("User-Agent", "").startswith("kiln/"))
        self.assertEqual(h.get("X-Scope-OrgID"), "team1")
        self.assertEqual(h.get("Authorization"), "Basic dTpw")
        # the same batch again (same size), after at least min_backoff
        self.assertEqual(flaky[0][4], flaky[1][4])
        self.assertGreaterEqual(flaky[1][0] - flaky[0][0], 0.09)
        # 429 with Retry-After: 1 s honoured
        s429 = [e for e in log if e[1] == "slow429"]
        self.assertEqual(s429[0][2], 429)
        self.assertGreaterEqual(s429[1][0] - s429[0][0], 0.95)
        self.assertGreater(m("slow429", "samples_retried_total"), 0)
        # 400: dropped and counted, never retried (each request carries new samples)
        self.assertEqual(m("bad", "samples_retried_total"), 0)
        bad = [e for e in log if e[1] == "bad"]
        self.assertGreater(len(bad), 1)
        self.assertGreater(m("bad", "samples_failed_total"), 0)
        self.assertEqual(m("bad", "samples_total"), 0)
        # a receiver that hangs: the request times out (remote_timeout 1s) and is retried
        self.assertGreater(m("hang", "samples_retried_total"), 0)
        hang = [e for e in log if e[1] == "hang"]
        self.assertEqual(hang[1][2], 200)
        self.assertIn("Timeout", k.read_log())
        self.assertEqual(k.stop(), 0)

    def test_reload_keeps_unchanged_queues(self):
        _, base, k = self.start_receiver()

        def write(deadline_b):
            with open(k.config_path, "w") as f:
                f.write(f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["{k.addr}"]}}]
remote_write:
  - {{url: {base}/a, queue_config: {{batch_send_deadline: 200ms}}}}
  - {{url: {base}/b, queue_config: {{batch_send_deadline: {deadline_b}}}}}
""")
        write("200ms")
        k.start()
        m = lambda mode: metric(k, "samples_total", f"{base}/{mode}") or 0
        self.assertTrue(wait_for(lambda: m("a") > 0 and m("b") > 0, timeout=20, step=0.2))
        before_a = m("a")
        write("300ms")
        k.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: k.read_log().count("remote write: starting") == 3, timeout=10))
        log = k.read_log()
        self.assertEqual(log.count(f"url={base}/a segment"), 1)  # kept running
        self.assertEqual(log.count(f"url={base}/b segment"), 2)  # restarted
        # the kept queue's counter went on; the restarted one sends again, from its progress
        self.assertTrue(wait_for(lambda: m("a") > before_a and m("b") > 0, timeout=20, step=0.2))
        self.assertEqual(k.stop(), 0)


def kiln_receiver(case):
    """A kiln as the receiver (it takes 2.0 and counts metadata), stopped and
    removed when the test ends."""
    recv = Kiln().start()
    case.addCleanup(recv.cleanup)
    case.addCleanup(recv.stop)
    return recv


class TestSendV2(unittest.TestCase):
    """protobuf_message: io.prometheus.write.v2.Request, to kiln's own
    receiver (Prometheus 2.42 does not take remote write 2.0): the receiver
    holds every sample the sender holds, labels equal (symbols table)."""

    def test_v2_to_kiln(self):
        recv = kiln_receiver(self)
        k = Kiln(config=f"""global:
  scrape_interval: 1s
  external_labels: {{site: s1}}
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["127.0.0.1:{free_port()}", "{recv.addr}"]}}]
remote_write:
  - url: http://{recv.addr}/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    queue_config: {{batch_send_deadline: 500ms, max_samples_per_send: 300}}
""")
        self.addCleanup(k.cleanup)
        k.start()
        url = f"http://{recv.addr}/api/v1/write"
        time.sleep(4)
        t = time.time() - 1
        self.assertTrue(wait_for(lambda: (metric(k, "queue_highest_sent_timestamp_seconds", url) or 0) >= t,
                                 timeout=30, step=0.2), k.read_log()[-2000:])
        mine = raw_samples(f"http://{k.addr}", t)
        theirs = raw_samples(f"http://{recv.addr}", t)
        self.assertGreater(len(mine), 50)
        for key, v in mine.items():
            m = json.loads(key)
            m["site"] = "s1"
            self.assertEqual(theirs.get(json.dumps(m, sort_keys=True)), v, key)
        self.assertEqual(metric(k, "samples_failed_total", url), 0)
        # the receiver decoded every request as 2.0 (the content type says so): 204s only
        codes = {key: v for key, v in recv.metrics().items()
                 if key.startswith("kiln_remote_write_requests_total") and v}
        self.assertEqual(list(codes), ['kiln_remote_write_requests_total{code="204"}'], codes)
        k.stop()


class TestSendMetadata(unittest.TestCase):
    """metadata_config: the scraped families' metadata goes out every
    send_interval in WriteRequest.metadata, in requests of
    max_samples_per_send entries; kiln's receiver counts what it gets."""

    def test_metadata_to_kiln(self):
        recv = kiln_receiver(self)
        k = Kiln(config=f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["{recv.addr}"]}}]
remote_write:
  - url: http://{recv.addr}/api/v1/write
    metadata_config: {{send_interval: 1s, max_samples_per_send: 10}}
""")
        self.addCleanup(k.cleanup)
        k.start()
        url = f"http://{recv.addr}/api/v1/write"
        families = lambda: len(k.get_json("/api/v1/metadata")[1]["data"])  # noqa: E731
        self.assertTrue(wait_for(lambda: families() > 20, timeout=30))
        n = families()
        # a round is every family's entries (one each here), 10 a request
        self.assertTrue(wait_for(lambda: (metric(k, "metadata_total", url) or 0) >= 2 * n, timeout=30),
                        k.read_log()[-2000:])
        got = recv.metrics().get("kiln_remote_write_metadata_received_total", 0)
        self.assertGreaterEqual(got, 2 * n)
        self.assertEqual(metric(k, "metadata_failed_total", url), 0)
        self.assertGreater(metric(k, "metadata_bytes_total", url), 0)
        # send: false sends none
        with open(k.config_path) as f:
            cfg = f.read().replace("send_interval: 1s,", "send: false, send_interval: 1s,")
        k.stop()
        with open(k.config_path, "w") as f:
            f.write(cfg)
        k.start()
        time.sleep(3)
        self.assertEqual(metric(k, "metadata_total", url) or 0, 0)
        k.stop()


if __name__ == "__main__":
    unittest.main()
